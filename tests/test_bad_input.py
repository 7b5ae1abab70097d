"""The bad-input catalogue: every public API endpoint and CLI command gets at least 15 hostile requests.

Each must end in a clear message (never a traceback) — or, for the few listed as accepted, in a documented
default or clamp — and the server must answer the next good request. API calls go over Gradio's raw HTTP API so
wrong types, junk bodies and invalid UTF-8 reach the server as a hostile client would send them.
"""

from __future__ import annotations

import io
import json
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from aigc_hub import hub
from aigc_hub.cli import main as cli_main
from conftest import is_user_error

NAN, INF = float("nan"), float("inf")
BAD_TEXT = ["", "   ", "x" * 100_000, "\x00\x07\x1b[2J", "\ud800 lone surrogate", "../../etc/passwd", "a/b/c", None,
            12345, ["a", "list"], {"a": "dict"}]
BAD_NUMBER = [NAN, INF, -INF, 1e300, -10**12, "abc", [], {"n": 1}]

PROMPT = ["a cat", "", 7.5, 64, 64, 1.0]  # and the class guidance of UNets with an empty label
EDITOR: dict = {}  # the image editor's value: a picture uploaded by `hostile_app` as its background  # prompt, negative prompt, guidance, width, height: text-to-image pipelines
GOOD = {  # "endpoint@variant" names a second model kind on the same endpoint
    "generate_image": ["me/tiny-gan", 1, 2, "any", 2, "ddim", *PROMPT],
    "generate_image@ddpm": ["me/tiny-ddpm", 1, 2, "any", 2, "ddim", *PROMPT],
    "generate_image@sd": ["me/tiny-sd", 1, 2, "any", 2, "ddim", *PROMPT],
    "generate_image@guided": ["me/tiny-guided", 1, 2, "any", 2, "ddim", *PROMPT],  # its class guidance is used
    "interpolate": ["me/tiny-gan", 0, 1, 3, "any", 2, "ddim", *PROMPT],
    "interpolate@ddpm": ["me/tiny-ddpm", 0, 1, 3, "any", 2, "ddim", *PROMPT],
    "interpolate@sd": ["me/tiny-sd", 0, 1, 3, "any", 2, "ddim", *PROMPT],
    "stop_images": [],
    "generate_text": ["me/long-lm", "A", 5, 0.8, 50, 0.95, 1.0, "", 1],
    "stop_text": [],
    "translate": ["me/tiny-mt", "Hello.\n\nThanks.", "en", "zh", 2, 1],
    "edit_image@ddpm": ["me/tiny-ddpm", EDITOR, 0.5, "", 2, 1, "any", 2, "ddim", *PROMPT],
    "image_variations": ["me/tiny-gan", 3, 2, "any", 0.2, 2, "ddim", *PROMPT],
    "load_model": ["me/tiny-gan", "auto", "configured"],
    "unload_model": ["me/tiny-gan"],
    "list_models": [],
}
MODELS = ["me/truncated", "me/pickle-only", "me/bad-config", "me/nothing", "../../etc"]
TEXT_ARGS = {"generate_text": {1, 7}, "translate": {1, 2, 3}, "generate_image@sd": {6, 7},
             "interpolate@sd": {7, 8}}  # positions of free-text inputs
# Hostile values the app takes on purpose (documented defaults and clamps), as (endpoint, position, value).
ACCEPTED = {
    ("generate_text", 7, ""), ("generate_text", 7, "   "), ("generate_text", 7, "\x00\x07\x1b[2J"),
    ("generate_text", 7, "../../etc/passwd"), ("generate_text", 7, "a/b/c"), ("generate_text", 7, None),
    ("generate_text", 1, "\ud800 lone surrogate"), ("generate_text", 1, "../../etc/passwd"),
    ("generate_text", 1, "a/b/c"), ("generate_text", 1, "x" * 100_000),  # cut from the left with a notice
    ("generate_text", 7, "x" * 100_000), ("generate_text", 7, "\ud800 lone surrogate"),
    ("generate_text", 2, 1e300), ("generate_text", 2, -10**12),  # max new tokens clamped to [1, 2048]
    ("translate", 1, "../../etc/passwd"), ("translate", 1, "a/b/c"), ("translate", 1, "\ud800 lone surrogate"),
    ("edit_image@ddpm", 3, ""), ("edit_image@ddpm", 3, "   "), ("edit_image@ddpm", 3, None),  # no outpainting
    ("edit_image@ddpm", 6, None), ("edit_image@ddpm", 8, None), ("image_variations", 3, None),  # defaults
    ("image_variations", 3, ""), ("image_variations", 3, "   "),  # a blank label (a Textbox): any class
    ("load_model", 2, None),  # the configured backend
    ("unload_model", 0, "me/truncated"), ("unload_model", 0, "me/pickle-only"), ("unload_model", 0, "me/bad-config"),
    # listed but not loaded: "was not loaded"
    ("generate_image", 3, None), ("interpolate", 4, None),  # no label: every class in turn
    ("generate_image@ddpm", 3, None), ("interpolate@ddpm", 4, None),
    ("generate_image@ddpm", 5, None), ("interpolate@ddpm", 6, None),  # no sampler: the default one
    ("generate_image@guided", 3, None), ("generate_image@guided", 5, None),
    ("generate_image@sd", 3, None), ("interpolate@sd", 4, None), ("generate_image@sd", 5, None),
    ("interpolate@sd", 6, None),
    # A prompt is free text: empty (or None) asks for an unconditioned image, and a path is only words.
    *((f"{endpoint}@sd", pos, v) for endpoint, first in (("generate_image", 6), ("interpolate", 7))
      for pos in (first, first + 1) for v in ("", "   ", None, "../../etc/passwd", "a/b/c")),
}
# A GAN takes no steps, sampler or prompt; a DDPM no prompt: those inputs are varied where they are used.
# The class guidance (the last input) applies to class-conditional UNets with an empty label only.
UNUSED = {"generate_image": set(range(4, 12)), "interpolate": set(range(5, 13)), "image_variations": set(range(5, 13)),
          "edit_image@ddpm": set(range(9, 15)),
          "generate_image@ddpm": set(range(6, 12)), "interpolate@ddpm": set(range(7, 13)),
          "generate_image@sd": {11}, "interpolate@sd": {12}, "generate_image@guided": set(range(6, 11))}
CHECK_EVERY = 3  # hostile cases between two good requests (each good one generates: most of the test's time)
EXTRA_ARGUMENT = "extra"  # Gradio drops arguments beyond an endpoint's inputs: harmless, so accepted
COERCED = "coerced"  # Gradio's Textbox turns any JSON value into its string form before the handler sees it


def hostile_cases(endpoint: str) -> list[tuple[str, object]]:
    """(label, data or raw bytes) pairs: each input position gets the hostile values of its kind, plus junk bodies."""
    good = GOOD[endpoint]
    cases: list[tuple[str, object]] = []
    for pos, value in enumerate(good):
        if pos in UNUSED.get(endpoint, ()):
            continue
        if pos == 0 and endpoint != "translate" or (endpoint == "translate" and pos == 0):
            values = MODELS + BAD_TEXT[:4]
        elif pos in TEXT_ARGS.get(endpoint, set()) or isinstance(value, str):
            values = BAD_TEXT
        else:
            values = BAD_NUMBER
        for v in values:
            data = list(good)
            data[pos] = v
            coerced = pos in TEXT_ARGS.get(endpoint, set()) and isinstance(v, (int, list, dict))
            cases.append((f"{endpoint}[{pos}]={str(v)[:30]!r}", data, COERCED if coerced else (endpoint, pos, v)))
    junk = [b'{"data": ["\xff\xfe invalid utf-8"]}', b"{not json", b'{"data": "not a list"}', b"{}",
            json.dumps({"data": list(good) + ["extra"]}).encode(), json.dumps({"data": [None] * 12}).encode()]
    too_many = len(good) < 12
    cases += [(f"{endpoint} body {body[:20]!r}", body,
               EXTRA_ARGUMENT if b'"extra"' in body or (b"null" in body and too_many) else None) for body in junk]
    if endpoint in ("stop_text", "stop_images", "list_models"):  # no inputs: junk bodies and stray arguments are all there is
        cases += [(f"{endpoint} stray {str(v)[:20]!r}", [v], EXTRA_ARGUMENT) for v in BAD_TEXT + BAD_NUMBER[:4]]
    return cases


def call(url: str, endpoint: str, payload: object) -> tuple[str, str]:
    """("ok" | "error" | "http", message) for one request over Gradio's HTTP API."""
    endpoint = endpoint.split("@")[0]
    body = payload if isinstance(payload, bytes) else json.dumps({"data": payload}).encode()
    r = httpx.post(f"{url}gradio_api/call/{endpoint}", content=body, headers={"content-type": "application/json"},
                   timeout=120)
    if r.status_code != 200:
        return "http", f"{r.status_code} {r.text[:300]}"
    event_id = r.json()["event_id"]
    with httpx.stream("GET", f"{url}gradio_api/call/{endpoint}/{event_id}", timeout=300) as s:
        stream = "".join(s.iter_text())
    kind = "error" if "event: error" in stream else "ok" if "event: complete" in stream else "http"
    message = stream.split("data:", 1)[-1].strip()
    if kind == "error":
        message = (json.loads(message) or {}).get("error") or "" if message.startswith("{") else message
    return kind, message


def broken_models(tmp_hub, tiny_gan) -> None:
    """A truncated safetensors file, a pickle-only folder and a config.json that does not parse, all listed."""
    for name in ("truncated", "pickle-only", "bad-config"):
        shutil.copytree(tiny_gan, tmp_hub / "me" / name)
    weights = tmp_hub / "me" / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    pickled = tmp_hub / "me" / "pickle-only"
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    (tmp_hub / "me" / "bad-config" / "config.json").write_text("{not json")


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    from tiny_hub_models import make_tiny_sd

    return make_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "sd")


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory, tiny_sd, long_lm, tiny_mt):
    """One app for the whole catalogue, as a real server takes every client's requests in turn: a case that broke a
    model or a lane breaks the endpoints after it too (and one launch instead of one per endpoint)."""
    from conftest import close_app, make_diffusion, make_gan, start_app, use_hub
    from test_class_guidance import guided

    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as env:
        use_hub(env, root / "hub")
        tiny_gan = make_gan(root / "tiny-gan")
        hub.push(guided(root / "guided"), "me/tiny-guided")
        hub.push(tiny_gan, "me/tiny-gan")
        hub.push(make_diffusion(root / "tiny-ddpm"), "me/tiny-ddpm")
        hub.push(tiny_sd, "me/tiny-sd")
        hub.push(long_lm, "me/long-lm")
        hub.push(tiny_mt, "me/tiny-mt")
        broken_models(root / "hub", tiny_gan)
        url, demo = start_app(image_model="me/tiny-gan", text_model="me/long-lm", translation_model="me/tiny-mt")
        try:
            picture = io.BytesIO()
            Image.fromarray(np.full((16, 16), 128, np.uint8)).save(picture, format="PNG")
            path = httpx.post(f"{url}gradio_api/upload", files={"files": ("in.png", picture.getvalue())},
                              timeout=60).json()[0]
            EDITOR.update(background={"path": path, "meta": {"_type": "gradio.FileData"}}, layers=[], composite=None)
            yield url
        finally:
            close_app(demo)


@pytest.mark.parametrize("endpoint", list(GOOD))
def test_every_api_endpoint_refuses_hostile_input_and_keeps_serving(hostile_app, endpoint, capfd):
    cases = hostile_cases(endpoint)
    assert len(cases) >= 15
    assert call(hostile_app, endpoint, GOOD[endpoint])[0] == "ok"
    problems = []
    for i, (label, payload, key) in enumerate(cases):
        kind, message = call(hostile_app, endpoint, payload)
        accepted = key in (EXTRA_ARGUMENT, COERCED) or isinstance(key, tuple) and any(
            key[:2] == a[:2] and _same(key[2], a[2]) for a in ACCEPTED)
        if kind == "ok" and not accepted:
            problems.append(f"{label}: accepted without a message")
        elif kind != "ok" and not is_user_error(message):
            problems.append(f"{label}: unclear error {message[:200]!r}")
        if i % CHECK_EVERY and i < len(cases) - 1:
            continue  # a good request after every few cases: a broken model or lane stays broken, and is caught
        again = call(hostile_app, endpoint, GOOD[endpoint])
        if again[0] != "ok":
            problems.append(f"{label} (or the {CHECK_EVERY - 1} before it): the next good request failed: "
                            f"{again[1][:200]}")
    log = capfd.readouterr().err
    if "Traceback" in log:  # a refusal is not a crash: the server log stays readable
        problems.append("the server log holds a traceback:\n" + log[log.index("Traceback"):][:3000])
    assert not problems, "\n".join(problems)


def test_the_catalogue_catches_an_internal_error(hostile_app, monkeypatch):
    """If a handler breaks on a case, the catalogue must say so: a bug shows as "internal error", not as a refusal."""
    from aigc_hub.engine.services import EngineImageService
    from aigc_hub.services import ImageService

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    for served in (ImageService, EngineImageService):  # the app's, with model work inline or in an engine
        monkeypatch.setattr(served, "run", broken)
    kind, message = call(hostile_app, "generate_image", GOOD["generate_image"])
    assert kind == "error" and not is_user_error(message) and "log id" in message, message


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b


# --- CLI --------------------------------------------------------------------------------------------------------

def cli_cases(tiny_gan, long_lm, tiny_mt, tmp_path) -> dict[str, list[list[str]]]:
    bad_utf8 = tmp_path / "bad.txt"
    bad_utf8.write_bytes(b"Hello \xff\xfe world\n")
    big = tmp_path / "big.txt"
    big.write_text("x" * 100_000 + "\n")
    folder_refs = ["", " ", "../../etc", "a/b/c", "me/nothing", "x" * 10_000, "\x00", "\udcff", str(tmp_path)]
    img = ["generate", "image", "--out", str(tmp_path / "o.png")]
    txt = ["generate", "text", "--prompt", "A"]
    chat = ["generate", "chat", "--message", "hi"]
    tr = ["translate", "--src", "en", "--tgt", "zh", "--input", str(tmp_path / "in.txt")]
    (tmp_path / "in.txt").write_text("Hello.\n")
    m = ["--model"]
    return {
        "generate image": [[*img, *m, r] for r in folder_refs] + [
            [*img, *m, str(tiny_gan), "--num", "-5"], [*img, *m, str(tiny_gan), "--num", "nan"],
            [*img, *m, str(tiny_gan), "--num", "10000000000"], [*img, *m, str(tiny_gan), "--seed", "-9"],
            [*img, *m, str(tiny_gan), "--seed", "1e400"], [*img, *m, str(tiny_gan), "--label", "99"],
            ["generate", "image", *m, str(tiny_gan), "--out", str(tmp_path / "o.gif")],
            ["generate", "image", *m, str(tiny_gan), "--out", "/proc/nope/o.png"]],
        "generate text": [[*txt, *m, r] for r in folder_refs] + [
            ["generate", "text", *m, str(long_lm), "--prompt", ""], ["generate", "text", *m, str(long_lm), "--prompt", " "],
            [*txt, *m, str(long_lm), "--temperature", "-1"], [*txt, *m, str(long_lm), "--temperature", "nan"],
            [*txt, *m, str(long_lm), "--top-p", "0"], [*txt, *m, str(long_lm), "--top-p", "inf"],
            [*txt, *m, str(long_lm), "--top-k", "-1"], [*txt, *m, str(long_lm), "--max-new-tokens", "lots"],
            [*txt, *m, str(tiny_gan)]],
        "generate chat": [[*chat, *m, r] for r in folder_refs] + [
            [*chat, *m, str(long_lm)],  # no chat template
            ["generate", "chat", *m, str(long_lm), "--message", ""], [*chat, *m, str(long_lm), "--temperature", "nan"],
            [*chat, *m, str(long_lm), "--top-p", "0"], [*chat, *m, str(long_lm), "--max-new-tokens", "lots"],
            [*chat, *m, str(long_lm), "--history", str(tmp_path / "missing.json")],
            [*chat, *m, str(long_lm), "--history", str(bad_utf8)], [*chat, *m, str(tiny_gan)]],
        "translate": [[*tr, *m, r] for r in folder_refs] + [
            ["translate", *m, str(tiny_mt), "--src", "en", "--tgt", "fr", "--input", str(tmp_path / "in.txt")],
            ["translate", *m, str(tiny_mt), "--src", "xx", "--tgt", "zh", "--input", str(tmp_path / "in.txt")],
            [*tr, *m, str(tiny_mt), "--beams", "0"], [*tr, *m, str(tiny_mt), "--beams", "999"],
            [*tr, *m, str(tiny_mt), "--beams", "nan"],
            ["translate", *m, str(tiny_mt), "--src", "en", "--tgt", "zh", "--input", str(bad_utf8)],
            ["translate", *m, str(tiny_mt), "--src", "en", "--tgt", "zh", "--input", str(big)],
            ["translate", *m, str(tiny_mt), "--src", "en", "--tgt", "zh", "--input", str(tmp_path / "missing.txt")],
            [*tr, *m, str(tiny_gan)]],
        "list": [["list", "--extra-model", r] for r in ["", "../../etc", "a/b/c", "\x00", "x" * 10_000, "\udcff"]] + [
            ["list", "--bogus"], ["list", "--json", "--json", "extra"], ["list", "extra"], ["list", "--extra-model"],
            ["list", "-x"], ["list", "--json=1"], ["list", "--extra-model", "/nonexistent/dir"],
            ["list", "--extra-model", str(tmp_path / "bad.txt")], ["list", "--extra-model", "a@b@c"]],
        "push": [["push", str(tiny_gan), "--repo-id", r] for r in ["", " ", "../../etc", "a/b/c", "/abs/x", "\x00/x",
                                                                   "x" * 500 + "/y", "a/..", "\udcff/x"]] + [
            ["push", str(tmp_path / "missing"), "--repo-id", "me/x"], ["push", str(bad_utf8), "--repo-id", "me/x"],
            ["push", str(tmp_path), "--repo-id", "me/x"], ["push", str(tiny_gan)],
            ["push", str(tiny_gan), "--repo-id", "me/x", "--hf"], ["push", "", "--repo-id", "me/x"]],
        "serve": [["serve", "--port", p] for p in ["-1", "0", "70000", "abc", "1e9"]] + [
            ["serve", "--host", ""], ["serve", "--host", "bad host"], ["serve", "--queue-size", "0"],
            ["serve", "--queue-size", "-5"], ["serve", "--tabs", "painting"], ["serve", "--tabs", ","],
            ["serve", "--config", str(tmp_path / "missing.yaml")], ["serve", "--config", str(bad_utf8)],
            ["serve", "--config", str(_write(tmp_path / "c.yaml", "port: [1, 2"))],
            ["serve", "--config", str(_write(tmp_path / "d.yaml", "unknown_setting: 1"))],
            ["serve", "--config", str(_write(tmp_path / "e.yaml", "- a list"))]],
        "space build": [["space", "build", "--out", str(tmp_path / "s"), "--tabs", "image", "--model", f"image={r}"]
                        for r in folder_refs if r != "me/nothing"] + [  # offline, an HF id cannot be checked
            ["space", "build", "--out", str(tmp_path / "s"), "--tabs", "image", "--config", str(tmp_path / "no.yaml")],
            ["space", "build", "--out", str(tmp_path / "s"), "--tabs", "", "--model", f"image={tiny_gan}"],
            ["space", "build", "--out", str(tmp_path / "s"), "--tabs", "paint", "--model", f"image={tiny_gan}"],
            ["space", "build", "--out", str(tmp_path / "s"), "--tabs", "image", "--model", "image"],
            ["space", "build", "--out", str(tmp_path / "s"), "--tabs", "image", "--model", f"video={tiny_gan}"],
            ["space", "build", "--out", str(tmp_path), "--tabs", "image", "--model", f"image={tiny_gan}"],
            ["space", "build", "--tabs", "image", "--model", f"image={tiny_gan}"]],
        "space deploy": [["space", "deploy", str(tmp_path / "s"), "--space-id", r, "--dry-run"]
                         for r in ["", "../../etc", "a/b/c", "/abs", "\x00", "x" * 500, "\udcff"]] + [
            ["space", "deploy", str(tmp_path / "missing"), "--space-id", "me/x", "--dry-run"],
            ["space", "deploy", str(tmp_path), "--space-id", "me/x", "--dry-run"],
            ["space", "deploy", str(bad_utf8), "--space-id", "me/x", "--dry-run"],
            ["space", "deploy", "", "--space-id", "me/x"], ["space", "deploy", str(tmp_path / "s")],
            ["space", "deploy", str(tmp_path), "--space-id", "me/x"],
            ["space", "deploy", str(tmp_path), "--space-id", "me/x", "--hardware", "\x00"],
            ["space", "deploy", "--dry-run"], ["space", "deploy", str(tmp_path), "--space-id", "me/x", "--privat"]],
    }


def _write(path, text):
    path.write_text(text)
    return path


CLI_COMMANDS = ["generate image", "generate text", "generate chat", "translate", "list", "push", "serve", "space build", "space deploy"]


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_every_cli_command_refuses_hostile_input_clearly(command, tmp_hub, tiny_gan, long_lm, tiny_mt, tmp_path,
                                                         capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    cases = cli_cases(tiny_gan, long_lm, tiny_mt, tmp_path)[command]
    assert len(cases) >= 15, len(cases)
    problems = []
    for argv in cases:
        label = " ".join(a[:30] for a in argv)
        try:
            cli_main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        if code in (0, None):
            problems.append(f"{label}: accepted")
        elif code != 2 or not is_user_error(err):
            problems.append(f"{label}: exit {code}, unclear error {err[-300:]!r}")
    assert not problems, "\n".join(problems)
