"""`python -m aigc_hub ...`: generate, translate, list, push, serve. Same services as the app."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import cli_remote, hub, serve_checks
from .config import AppConfig, add_serve_args
from .errors import UserError, report_internal
from .families import tab_keys

EXIT_USAGE = 2
EXIT_INTERNAL = 1
logger = logging.getLogger("aigc_hub.cli")


def _generate_image(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from .imaging import make_grid, png_bytes, to_pil
    from .services import ImageRequest, ImageService, ModelRegistry

    service = ImageService(ModelRegistry({args.model: args.device} if args.device else None))
    out = Path(args.out)
    if out.suffix not in ("", ".png", ".npz"):  # refuse before any work
        raise UserError(f"--out must end in .png (a grid), .npz (arrays) or name a folder (one PNG each): {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    iterative = service.facts(args.model).iterative  # diffusion: seconds a batch, so always show progress
    service.params["n"].check(args.num)  # the service checks it again: refused here before a bar is drawn

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    total = None if iterative else max(args.num, 0)  # diffusion counts steps × images: known at the first update
    with tqdm(total=total, unit="step" if iterative else "img", disable=args.num < 256 and not iterative,
              file=sys.stderr) as bar:
        result = service.run(ImageRequest(args.model, args.num, args.seed, args.label, args.steps, args.sampler,
                                          args.prompt, args.negative_prompt, args.guidance, args.width, args.height,
                                          _read(args.init_image, "--init-image"), _read(args.mask, "--mask"),
                                          args.strength, args.outpaint, args.variation_seed,
                                          args.variation_strength),
                             progress=progress)
    if out.suffix == ".npz":
        labels = np.array([-1 if lab is None else lab for lab in result.labels], dtype=np.int64)
        np.savez_compressed(out, images=result.images, seeds=np.array(result.seeds, dtype=np.int64), labels=labels)
    elif out.suffix == ".png" and len(result.seeds) == 1:  # one image: the image itself, not a padded grid
        out.write_bytes(result.png(0))
    elif out.suffix == ".png":
        out.write_bytes(png_bytes(to_pil(make_grid(result.images, nrow=args.nrow)), result.grid_parameters()))
    else:
        out.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(result.seeds):
            (out / f"seed-{s}.png").write_bytes(result.png(i))
    print(f"wrote {len(result.seeds)} image(s) to {out} (seed {result.seed}; image i used seed {result.seed} + i)")


def _read(path: str | None, flag: str) -> bytes | None:
    """A picture file's bytes (the service decodes and checks them, as it does an upload's)."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"{flag}: cannot read {path}: {e.strerror or e}") from None


def _generate_text(args: argparse.Namespace) -> None:
    from .services import TextRequest, TextService

    service = TextService(_registry(args))
    stream, = service.run(TextRequest(args.model, prompt=args.prompt, settings=_settings(args), seed=args.seed))
    _print_stream(stream, args.prompt)


def _settings(args: argparse.Namespace) -> Any:
    from .services import SamplingSettings

    return SamplingSettings(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.repetition_penalty,
                            args.stop or [])


def _generate_chat(args: argparse.Namespace) -> None:
    from .services import TextRequest, TextService

    history = []
    if args.history:
        try:
            history = json.loads(Path(args.history).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"--history {args.history}: not a readable JSON file ({e})") from None
    if not isinstance(history, list):
        raise UserError("--history: a JSON list of {\"role\", \"content\"} messages is needed")
    service = TextService(_registry(args))
    messages = [*history, {"role": "user", "content": args.message}]
    stream, = service.run(TextRequest(args.model, messages=messages, system=args.system, settings=_settings(args),
                                      seed=args.seed))
    _print_stream(stream, "")


def _print_stream(stream: Any, head: str) -> None:
    """Notices to stderr, then `head` and the streamed text to stdout; Ctrl-C ends the generation itself."""
    for notice in stream.notices:
        print(f"note: {notice}", file=sys.stderr)
    sys.stdout.write(head)
    try:
        for piece in stream.chunks:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:  # Ctrl-C stops the generation, not just the printing
        stream.stop()
    sys.stdout.write("\n")
    print(f"seed {stream.seed}, {stream.tokens} new tokens", file=sys.stderr)


def _translate(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from .services import TranslationRequest, TranslationService
    from .services.translation import MAX_LINES

    service = TranslationService(_registry(args))
    try:
        source = (open(args.input, encoding="utf-8", errors="strict") if args.input else sys.stdin).read()
    except UnicodeDecodeError as e:
        raise UserError(f"the input is not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = source.split("\n")
    if lines and lines[-1] == "":  # a final newline ends the last line; it is not one more empty line
        lines.pop()
    out = []
    with tqdm(total=len(lines), unit="line", disable=len(lines) < 200, file=sys.stderr) as bar:
        for start in range(0, len(lines), MAX_LINES):  # files of any length, MAX_LINES per service call
            chunk = lines[start : start + MAX_LINES]
            if any(line.strip() for line in chunk):
                result = service.run(TranslationRequest(args.model, chunk, args.src, args.tgt, args.beams))
                out.extend(line.text for line in result.lines)
                for notice in result.notices:
                    print(f"note: {notice}", file=sys.stderr)
            else:
                out.extend("" for _ in chunk)
            bar.update(len(chunk))
    text = "".join(line + "\n" for line in out)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(out)} line(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _space_build(args: argparse.Namespace) -> None:
    from . import space

    tabs = [t for t in args.tabs.split(",") if t]
    models = {}
    for item in args.model or []:
        tab, sep, ref = item.partition("=")
        if not sep or not ref:
            raise UserError(f"--model takes TAB=REF (e.g. image=aigc-hub/dcgan-mnist), got {item!r}")
        models[tab] = ref
    plan = space.build(args.out, tabs, models, title=args.title, license=args.license, hardware=args.hardware,
                       defaults=AppConfig.load(args.config))
    print(plan.report())
    print(f"next: python -m aigc_hub space deploy {args.out} --space-id OWNER/NAME [--dry-run]")


def _space_deploy(args: argparse.Namespace) -> None:
    from . import space

    print(space.deploy(args.folder, args.space_id, private=args.private, hardware=args.hardware,
                       dry_run=args.dry_run))


def _list(args: argparse.Namespace) -> None:
    for ref in args.extra_model or []:
        hub.locate(ref)  # refuses malformed ids and paths that are not model folders
    from .added_models import listed

    entries = listed(args.extra_model or [])
    if args.json:
        print(json.dumps([{"ref": e.ref, "source": e.source, "path": str(e.path) if e.path else None,
                           "task": e.task, "family": e.family, "base": e.base, "pipeline_tag": e.card.pipeline_tag,
                           "datasets": e.card.datasets,
                           "figures": {f.name: f.value for f in e.card.figures}} for e in entries], indent=2))
        return
    if not entries:
        print(f"no models yet: the local hub is {hub.hub_home()}")
    for e in entries:
        print(f"{e.ref:40s} {e.source:8s} {e.card.summary()}" + (f" · adapter of {e.base}" if e.base else ""))


def _add(args: argparse.Namespace) -> None:
    from . import added_models

    entry = added_models.add(args.ref)
    print(f"added {entry.ref}: {entry.task} ({entry.family}) from {entry.path}")
    print(f"  {entry.card.summary()}")


def _remove(args: argparse.Namespace) -> None:
    from . import added_models

    if added_models.remove(args.ref):
        print(f"removed {args.ref} from the list (its files stay where they are)")
    elif added_models.is_remote_entry(args.ref):
        print(f"{args.ref}: removed ({added_models.remove_remote(args.ref)})")
    else:
        raise UserError(f"{args.ref!r} was not added and is no remote entry (see `python -m aigc_hub list`)")


def _push(args: argparse.Namespace) -> None:
    where = hub.push(args.folder, args.repo_id, hf=args.hf, private=args.private)
    print(f"pushed {args.folder} → {where}")


def _serve(args: argparse.Namespace) -> None:
    from .ui import build_demo, launch

    config = AppConfig.load(args.config).apply_args(args)
    serve_checks.before_loading(config)  # a busy port, a model no tab can open: said before seconds of loading
    demo = build_demo(config)
    try:
        launch(demo, config, quiet=True)  # Gradio's banner names its own variables (share=True in launch())
    except OSError as e:
        if "port" not in str(e).lower():
            raise
        raise UserError(serve_checks.busy_port(config)) from None
    print(serve_checks.banner(config, demo.local_url, demo.share_url), flush=True)
    if config.share and not demo.share_url:
        print("error: --share could not create a public link (no internet, or the share server refused); the "
              f"app serves only at {demo.local_url}", file=sys.stderr)
    demo.block_thread()


def _sampling_options(parser: argparse.ArgumentParser) -> None:
    """The text parameters, from their one spec (services/params.py): the service checks the values, with the same
    refusal as the tabs and /v1."""
    from .services.params import TEXT

    for name in ("max_new_tokens", "seed", "temperature", "top_k", "top_p", "repetition_penalty"):
        _spec_option(parser, TEXT[name], f"--{name.replace('_', '-')}")
    parser.add_argument("--stop", action="append",
                        help="end the text just before this string, when it comes (repeatable)")
    parser.add_argument("--device", default=None)
    _backend_option(parser)


def _backend_option(parser: argparse.ArgumentParser) -> None:
    from .backends import DEFAULT, NAMES

    parser.add_argument("--backend", default=DEFAULT, choices=NAMES,
                        help="ctranslate2: converted once (cached outside the hub), int8 on CPU")


def _registry(args: argparse.Namespace) -> Any:
    """The registry of a one-model command: its --device and --backend."""
    from .services import ModelRegistry

    return ModelRegistry({args.model: args.device} if args.device else None, backends={args.model: args.backend})


def _spec_option(parser: argparse.ArgumentParser, spec: Any, flag: str, default: Any = "spec") -> None:
    """An option of a request parameter, from its one spec (services/params.py): type, default and help. The
    service checks the value, with the refusal the tabs and /v1 give. `default` None: the model's own."""
    parser.add_argument(flag, type=spec.kind, default=spec.default if default == "spec" else default,
                        help=spec.help)


def build_parser() -> argparse.ArgumentParser:
    from .services.params import IMAGE, TRANSLATION

    parser = argparse.ArgumentParser(prog="python -m aigc_hub", description="AIGC Hub command line")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate with a model").add_subparsers(dest="modality", required=True)
    img = gen.add_parser("image", help="images from a GAN, a diffusion model or a text-to-image pipeline")
    img.add_argument("--model", required=True, help="local folder, owner/name, or owner/name@rev on the HF Hub")
    image = IMAGE
    img.add_argument("--num", type=int, default=16, help=image["n"].help)
    _spec_option(img, image["seed"], "--seed")
    img.add_argument("--label", default=None, help="class of a conditional model: its id, or its name when the model has names")
    _spec_option(img, image["steps"], "--steps", default=None)
    img.add_argument("--sampler", default=None, help="diffusion models: dpm-solver (default), ddim, euler, euler-a, "
                     "ddpm")
    img.add_argument("--prompt", default=None, help="text-to-image pipelines (Stable Diffusion): what to draw")
    img.add_argument("--negative-prompt", default=None, help="text-to-image pipelines: what to steer away from")
    _spec_option(img, image["guidance_scale"], "--guidance", default=None)
    _spec_option(img, image["width"], "--width", default=None)
    _spec_option(img, image["height"], "--height", default=None)
    img.add_argument("--init-image", default=None, metavar="PATH", help="diffusion models: edit this picture "
                     "(image-to-image; with --mask, inpainting), stretched to the model's size")
    img.add_argument("--mask", default=None, metavar="PATH", help="inpainting: a picture of the input's size, "
                     "white repainted, black kept")
    _spec_option(img, image["strength"], "--strength", default=None)
    img.add_argument("--outpaint", default=None, metavar="LEFT,TOP,RIGHT,BOTTOM", help="extend the input by these "
                     "pixels and paint them in")
    _spec_option(img, image["variation_strength"], "--variation-strength", default=None)
    img.add_argument("--variation-seed", type=int, default=None, help="variations: image i blends --seed's noise "
                     "with this seed + i's (-1: random)")
    img.add_argument("--out", required=True, help="grid.png | samples.npz | DIR (one PNG per image)")
    img.add_argument("--nrow", type=int, default=8, help="images per row of a grid")
    img.add_argument("--device", default=None, help="auto (default), cpu, cuda:N")
    img.set_defaults(func=_generate_image)

    txt = gen.add_parser("text", help="text from a causal language model, streamed to stdout")
    txt.add_argument("--model", required=True)
    txt.add_argument("--prompt", required=True)
    _sampling_options(txt)
    txt.set_defaults(func=_generate_text)

    chat = gen.add_parser("chat", help="the next answer of a chat model (its own chat template), streamed to stdout")
    chat.add_argument("--model", required=True)
    chat.add_argument("--message", required=True, help="the user's message")
    chat.add_argument("--system", default=None, help="system prompt")
    chat.add_argument("--history", default=None, help='JSON file: the earlier [{"role", "content"}, ...] turns')
    _sampling_options(chat)
    chat.set_defaults(func=_generate_chat)

    tr = sub.add_parser("translate", help="translate lines of text (one output line per input line)")
    tr.add_argument("--model", required=True)
    tr.add_argument("--src", required=True, help="source language code, e.g. en")
    tr.add_argument("--tgt", required=True, help="target language code, e.g. zh")
    _spec_option(tr, TRANSLATION["beams"], "--beams")
    tr.add_argument("--input", default=None, help="UTF-8 text file, one sentence per line (default: stdin)")
    tr.add_argument("--output", default=None, help="default: stdout")
    tr.add_argument("--device", default=None)
    _backend_option(tr)
    tr.set_defaults(func=_translate)

    sp = sub.add_parser("space", help="build or deploy a Hugging Face Space").add_subparsers(dest="action",
                                                                                            required=True)
    sb = sp.add_parser("build", help="write a self-contained Space folder")
    sb.add_argument("--tabs", default=",".join(t for t in tab_keys() if t != "train"),
                    help="comma-separated tabs (default: all but Train: a Space shows models, it does not train)")
    sb.add_argument("--model", action="append", metavar="TAB=REF",
                    help="the model of a tab (repeatable; default: the app's default model of each tab)")
    sb.add_argument("--config", default=None, help="app settings whose default models to use")
    sb.add_argument("--out", required=True, help="a new folder")
    sb.add_argument("--title", default="AIGC Hub")
    sb.add_argument("--license", default=None, help="default: the first model card's license")
    sb.add_argument("--hardware", default="cpu-basic", help="suggested_hardware (cpu-basic, t4-small, zero-a10g, ...)")
    sb.set_defaults(func=_space_build)
    sd = sp.add_parser("deploy", help="create the Space repo and upload a built folder")
    sd.add_argument("folder")
    sd.add_argument("--space-id", required=True, help="owner/name")
    sd.add_argument("--private", action="store_true")
    sd.add_argument("--hardware", default=None, help="request this hardware for the Space")
    sd.add_argument("--dry-run", action="store_true", help="list what would be created and uploaded; no network")
    sd.set_defaults(func=_space_deploy)

    lst = sub.add_parser("list", help="models in the local hub and the starters")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--extra-model", action="append", help="an HF id to include (read from the cache only)")
    lst.set_defaults(func=_list)

    add = sub.add_parser("add", help="add a model to the app's list: HF id (owner/name[@rev]) or folder; remembered")
    add.add_argument("ref")
    add.set_defaults(func=_add)
    rm = sub.add_parser("remove", help="forget a model added with `add` (its files stay)")
    rm.add_argument("ref")
    rm.set_defaults(func=_remove)

    push = sub.add_parser("push", help="publish a model folder to the local hub (or the HF Hub with --hf)")
    push.add_argument("folder")
    push.add_argument("--repo-id", required=True, help="owner/name")
    push.add_argument("--hf", action="store_true", help="push to the Hugging Face Hub (needs a token)")
    push.add_argument("--private", action="store_true")
    push.set_defaults(func=_push)

    cli_remote.add_parser(sub)

    serve = sub.add_parser("serve", help="run the Gradio app (same as python app.py)")
    add_serve_args(serve)
    serve.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (UserError, OSError) as e:  # the user's errors, and files they named that cannot be read or written
        _say(f"error: {e}")
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as e:  # a bug of ours: the log has the traceback, the message its id
        _say(f"error: {report_internal(logger, e, ' '.join(sys.argv[1:3]) or 'command')}")
        raise SystemExit(EXIT_INTERNAL) from None


def _say(message: str) -> None:
    # (a hostile argument may hold surrogates from undecodable bytes: never let the message itself fail)
    print(message.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)
