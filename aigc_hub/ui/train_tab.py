"""The Train tab: pick a recipe (what to train: aigc_hub/recipes.py), data, a preset and a step count; Start runs the
project's own training script as a job (aigc_hub.jobs, a subprocess, never in the server); watch it learn (loss
curve, latest samples, step, speed, time left, evaluation figures, its log); Stop and Resume it; when it ends well it
is published to the hub and listed in the Image / Text / Translation tab. Before Start it says about how long the
chosen steps will train (aigc_hub/jobs/estimate.py). The job list lives on disk: it survives a page reload and a
server restart.

"Start from" adapts a model the hub lists (LoRA of a rank, or every weight) instead of training from scratch, for the
recipes whose script can (aigc_hub/recipes.py); a preview shows the first rows of the data as the model will read
them, with what it learns in bold (aigc_hub/sft_rows.py).

Its API endpoints (gradio_client): /start_training(recipe, data, preset, steps, hub_id, ..., base, lora_rank) → job id,
/training_status(job_id), /stop_training(job_id), /resume_training(job_id), /list_jobs(). Starts run one at a time
(their data checks are bounded in memory, and do not stack); an uploaded file is consumed by the start that names it
(the job keeps its own copy; a refused one is deleted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import contextlib

import gradio as gr
from gradio.data_classes import FileData

from ..errors import UserError
from ..jobs import Job, read
from ..jobs.commands import base_options
from ..jobs.estimate import expected
from ..paths import within
from ..recipes import DATA_KINDS, RECIPES
from .common import AppContext, in_notice, shared_args, user_errors

DATA_SUFFIXES = [".zip", ".npz", ".txt", ".jsonl", ".csv"]
HEADERS = ["job", "recipe", "data", "state", "steps", "publish as", "message"]
# Starting a job checks its data in the server (bounded, but not free): one start at a time, from the tab or the API.
STARTS = dict(concurrency_id="training-start", concurrency_limit=1)


def build(ctx: AppContext, tab: gr.Tab) -> None:
    jobs = ctx.jobs
    with gr.Row():
        first = next(iter(RECIPES.values()))
        recipe = gr.Radio([(r.title, k) for k, r in RECIPES.items()], value=first.key, label="What to train",
                          elem_id="train-recipe")
        preset = gr.Dropdown(list(first.presets), value=next(iter(first.presets)), label="Preset",
                             elem_id="train-preset")
        steps = gr.Number(first.steps, precision=0, minimum=1, label="Steps", elem_id="train-steps")
        hub_id = gr.Textbox(jobs.free_id(f"me/my-{first.key}"), label="Publish as (owner/name)",
                            elem_id="train-hub-id")
    with gr.Row():
        base = gr.Dropdown(_bases(ctx, first.key), value=SCRATCH, label="Start from", elem_id="train-base",
                           visible=first.base_family is not None)
        lora_rank = gr.Number(16, precision=0, minimum=0, maximum=256, label="LoRA rank (0: every weight)",
                              elem_id="train-lora-rank", visible=False)
    with gr.Row():
        upload = gr.File(label=f"Upload data: {DATA_KINDS[first.data]}", file_types=DATA_SUFFIXES, type="filepath",
                         elem_id="train-upload")
        dataset = gr.Dropdown(_data_files(ctx), value=None, allow_custom_value=True, elem_id="train-dataset",
                              label="… or a dataset: a file of the server's data folder, or a Hugging Face dataset")
    with gr.Row():
        to_hf = gr.Checkbox(False, label="Publish to the Hugging Face Hub (the server needs a token)",
                            elem_id="train-hf")
        trackio = gr.Checkbox(False, label="Also log to trackio (beside tensorboard)", elem_id="train-trackio")
        overwrite = gr.Checkbox(False, label="Replace the model if the id is taken", elem_id="train-overwrite")
    preview = gr.Markdown(elem_id="train-preview")
    estimate = gr.Markdown(expected(jobs, first.key, next(iter(first.presets)), first.steps), elem_id="train-estimate")
    start = gr.Button("Start training", variant="primary", elem_id="train-start")
    with gr.Row():
        job = gr.Dropdown(_choices(jobs.jobs()), value=None, label="Job", elem_id="train-job", scale=3)
        stop = gr.Button("Stop", variant="stop", elem_id="train-stop", scale=0, min_width=80)
        resume = gr.Button("Resume", elem_id="train-resume", scale=0, min_width=80)
    status = gr.Markdown(elem_id="train-status")
    with gr.Row():
        # No label: with one, Gradio 6.31 cuts the legend off below the plot (the series' names went missing).
        curve = gr.LinePlot(x="step", y="value", color="series", color_title="training loss", show_label=False,
                            height=300, elem_id="train-curve")
        sample = gr.Image(label="Latest samples", type="filepath", interactive=False, elem_id="train-sample")
    texts = gr.Textbox(label="Latest text samples", lines=6, interactive=False, visible=False,
                       elem_id="train-texts")  # shown when the job writes text samples
    log = gr.File(label="Log", interactive=False, elem_id="train-log")
    table = gr.Dataframe(_table(jobs.jobs()), headers=HEADERS, interactive=False, label="Jobs",
                         elem_id="train-jobs")
    timer = gr.Timer(1.0, active=False)  # ticks only while the job shown is queued or running

    def view(job_id: str | None) -> tuple:
        """The selected job's live view, the job list, and whether to keep ticking."""
        listing = jobs.jobs()
        current = next((j for j in listing if j.id == job_id), None)
        if current is None:
            return ("_No job selected._", None, None, gr.update(value="", visible=False), None, _table(listing),
                    gr.Timer(active=False))
        p = read(jobs.store.log(current.id), jobs.store.output(current.id), current.steps)
        # The curve: the training losses, whose series all exist from the first logged step (Gradio 6.31's plot
        # keeps the series of the first data it drew, and draws nothing after an empty frame: None until then).
        # The learning rate and the evaluation figures are in the status text.
        points = [{"step": s, "value": v, "series": tag} for tag, pts in p.curves.items()
                  if "loss" in tag and not tag.startswith(("val", "eval")) for s, v in pts]
        import pandas as pd

        frame = pd.DataFrame(points).astype({"step": "int64", "value": "float64"}) if points else None
        texts_now = "\n\n".join(f"{k}:\n{v}" for k, v in p.texts.items())
        live = current.state in ("queued", "running", "stopping")
        return (_status(current, p), frame, str(p.sample) if p.sample else None,
                gr.update(value=texts_now, visible=bool(texts_now)),
                str(jobs.store.log(current.id)) if jobs.store.log(current.id).exists() else None, _table(listing),
                gr.Timer(active=live))

    @user_errors
    def on_start(recipe_key: str, uploaded: str | None, name: str | None, preset_name: str, n: float, hub: str,
                 hf: bool, with_trackio: bool, replace: bool, start_from: str | None, rank: float,
                 request: gr.Request):
        data: Any = Path(uploaded) if uploaded else name
        started = jobs.start(recipe_key, data, preset_name, n, hub, hf=bool(hf), trackio=bool(with_trackio),
                             overwrite=bool(replace), user=_user(request), base=_base(start_from), lora_rank=rank)
        return gr.update(choices=_choices(jobs.jobs()), value=started.id), *view(started.id)

    def on_base(recipe_key: str, start_from: str | None):
        adapting = _base(start_from) is not None
        return gr.update(visible=not adapting), gr.update(visible=adapting and RECIPES[recipe_key].lora)

    def on_data(recipe_key: str, start_from: str | None, uploaded: str | None, name: str | None) -> str:
        return data_preview(ctx, recipe_key, _base(start_from), Path(uploaded) if uploaded else name)

    @user_errors
    def on_stop(job_id: str | None):
        jobs.stop(_selected(job_id))
        return view(job_id)

    @user_errors
    def on_resume(job_id: str | None):
        jobs.resume(_selected(job_id))
        return view(job_id)

    def on_recipe(recipe_key: str):
        r = RECIPES[recipe_key]
        presets = list(r.presets)
        return (gr.update(choices=presets, value=presets[0], visible=True), gr.update(value=r.steps),
                gr.update(label=f"Upload data: {DATA_KINDS[r.data]}"),
                gr.update(value=jobs.free_id(f"me/my-{recipe_key}")),
                gr.update(choices=_bases(ctx, recipe_key), value=SCRATCH, visible=r.base_family is not None),
                gr.update(visible=False), "")

    def on_plan(recipe_key: str, preset_name: str, n: float, start_from: str | None, rank: float) -> str:
        label, adapting = preset_name, _base(start_from)
        if adapting:  # the job's label for it: this server's history of the same base and rank
            try:
                label = base_options(recipe_key, adapting, rank)[1]
            except UserError:
                return ""
        return expected(jobs, recipe_key, label, n)

    outputs = [status, curve, sample, texts, log, table, timer]
    plan = [recipe, preset, steps, base, lora_rank]
    for source in plan:
        source.change(on_plan, plan, estimate, api_visibility="private", show_progress="hidden")
    recipe.change(on_recipe, recipe, [preset, steps, upload, hub_id, base, lora_rank, preview],
                  api_visibility="private")
    base.change(on_base, [recipe, base], [preset, lora_rank], api_visibility="private")
    for source in (base, upload, dataset):
        source.change(on_data, [recipe, base, upload, dataset], preview, api_visibility="private",
                      show_progress="hidden")
    start.click(in_notice(on_start),
                [recipe, upload, dataset, preset, steps, hub_id, to_hf, trackio, overwrite, base, lora_rank],
                [job, *outputs], api_visibility="private", **STARTS)
    stop.click(in_notice(on_stop), job, outputs, api_visibility="private")
    resume.click(in_notice(on_resume), job, outputs, api_visibility="private")
    job.change(view, job, outputs, api_visibility="private")
    timer.tick(view, job, outputs, api_visibility="private", show_progress="hidden")
    tab.select(lambda job_id: gr.update(choices=_choices(jobs.jobs()), value=job_id), job, job,
               api_visibility="private")
    _api(ctx)


def _api(ctx: AppContext) -> None:
    """The named endpoints for clients (gradio_client, MCP), typed from their signatures."""
    jobs = ctx.jobs

    @user_errors
    @shared_args("preset: the model size; " + "; ".join(f"{k}: {', '.join(r.presets)}" for k, r in RECIPES.items()))
    def start_training(recipe: str, data: FileData | str, preset: str, steps: int, hub_id: str, hf: bool = False,
                       trackio: bool = False, overwrite: bool = False, base: str = "", lora_rank: int = 16,
                       request: gr.Request = None) -> str:
        """Start training a model on a dataset; it is published to the hub as hub_id when it ends. Returns the job
        id (one job per device runs at a time; the others wait, queued).

        Args:
            recipe: what to train: gan, diffusion, text or translation
            data: an uploaded file (a .zip of an image folder, an .npz, a .txt, a .jsonl or .csv of pairs), the
                name of a file in the server's data folder, or a Hugging Face dataset name
            steps: optimizer steps
            hub_id: owner/name to publish the model as; one the hub has already, or another job's, is refused
                unless overwrite is set (a starter's always)
            hf: publish to the Hugging Face Hub instead of the local hub (the server needs a token, and allows only
                the owners its operator named)
            trackio: also log to trackio, beside tensorboard
            overwrite: replace the model published as hub_id
            base: a model the hub lists to start from (adapt) instead of training from scratch: a DCGAN for gan
                (fine-tuned whole), a diffusion pipeline for diffusion, a causal LM for text, a translator for
                translation; the preset does not apply then
            lora_rank: with base, the LoRA rank (0: fine-tune every weight, as a GAN always is)
        """
        path = _data(data)
        try:
            return jobs.start(recipe, path, preset or None, steps, hub_id, hf=bool(hf), trackio=bool(trackio),
                              overwrite=bool(overwrite), user=_user(request), base=_base(base),
                              lora_rank=lora_rank).id
        finally:
            if isinstance(path, Path):  # consumed: the job copied what it needs, and a refused file is junk
                with contextlib.suppress(OSError):
                    path.unlink()

    @user_errors
    def training_status(job_id: str) -> dict:
        """A job's state (queued, running, stopping, stopped, failed, finished, interrupted), its step and total
        steps, its latest figures (losses, evaluation), and a message (why it failed, where it was published).

        Args:
            job_id: the id start_training returned
        """
        return _status_dict(jobs, _known(jobs, job_id))

    @user_errors
    def stop_training(job_id: str) -> dict:
        """Stop a job: it saves a checkpoint of the step it is at, and resume_training goes on from there.

        Args:
            job_id: the id start_training returned
        """
        return _status_dict(jobs, _call(jobs.stop, job_id))

    @user_errors
    def resume_training(job_id: str) -> dict:
        """Resume a stopped, failed or interrupted job from its last checkpoint.

        Args:
            job_id: the id start_training returned
        """
        return _status_dict(jobs, _call(jobs.resume, job_id))

    @user_errors
    def list_jobs() -> list[dict]:
        """Every training job, newest first, with its state and step."""
        return [_status_dict(jobs, j) for j in jobs.jobs()]

    gr.api(start_training, api_name="start_training", **STARTS)
    for fn in (training_status, stop_training, resume_training, list_jobs):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)


SCRATCH = "from scratch"


def _base(start_from: object) -> str | None:
    """The model to start from (None: from scratch)."""
    return start_from if isinstance(start_from, str) and start_from.strip() and start_from != SCRATCH else None


def _bases(ctx: AppContext, recipe_key: str) -> list[str]:
    """"from scratch", then every listed model the recipe's script can adapt."""
    family = RECIPES[recipe_key].base_family
    return [SCRATCH, *(e.ref for e in ctx.models() if family and e.family == family)]


def data_preview(ctx: AppContext, recipe_key: str, base: str | None, data: object) -> str:
    """The first rows of the data as the model will read them (what it learns in bold), when the data is a .jsonl
    of prompt / completion or chat rows for a model to start from; a line saying what happens otherwise."""
    from .. import hub, sft_rows
    from ..jobs.uploads import first_rows

    if base is None or RECIPES.get(recipe_key) is None or RECIPES[recipe_key].data != "text" or data in (None, ""):
        return ""  # sentence pairs are read as they are, whatever the model
    if base not in _bases(ctx, recipe_key):  # what a client names is read only if the hub lists it for the recipe
        return f"_No preview: {str(base)[:100]!r} is not a model this recipe can start from_"
    try:
        rows = first_rows(data, ctx.config.data_dir, 3)
        if rows is None:
            return "_The preview shows a .jsonl file's first rows; this data is read when the job starts._"
        fmt = sft_rows.row_format(rows[0].keys()) if rows and isinstance(rows[0], dict) else None
        if fmt in (None, "text"):
            return "_Text: every character is learned, packed into blocks of the model's context._"
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(hub.resolve(base, offline=True)), trust_remote_code=False)
        return f"_Preview: {fmt} rows as {base} reads them, what it learns in bold_\n\n" + sft_rows.preview(
            rows, fmt, tokenizer)
    except (UserError, ValueError, OSError) as e:
        return f"_No preview: {str(e)[:300]}_"


def _user(request: gr.Request | None) -> str | None:
    """The logged-in user (None without a login): their waiting jobs are counted."""
    return getattr(request, "username", None) or None


def _data(data: Any) -> Any:
    """An uploaded file (a FileData the client sent; only files Gradio itself received) or a name."""
    if isinstance(data, (dict, FileData)):
        raw = data.get("path") if isinstance(data, dict) else data.path
        try:
            path = Path(raw).resolve() if isinstance(raw, str) else None
            inside = path is not None and within(path, [Path(gr.utils.get_upload_folder())]) and path.is_file()
        except (OSError, ValueError):  # a name too long, a NUL byte
            inside = False
        if not inside:
            raise UserError("the data file must be one uploaded to this server (gradio_client's handle_file)")
        return path
    return data


def _call(action: Any, job_id: str) -> Job:
    return action(job_id)


def _known(jobs: Any, job_id: str) -> Job:
    return jobs.get(job_id)


def _status_dict(jobs: Any, job: Job) -> dict:
    p = read(jobs.store.log(job.id), jobs.store.output(job.id), job.steps)
    return {"job_id": job.id, "recipe": job.recipe, "state": job.state, "step": p.step, "total_steps": job.steps,
            "figures": p.figures, "device": job.device, "hub_id": job.hub_id, "published": job.published,
            "message": job.message, "data": job.data, "preset": job.preset, "warnings": p.warnings()}


def _selected(job_id: str | None) -> str:
    if not job_id:
        raise UserError("pick a job first")
    return job_id


def _choices(listing: list[Job]) -> list[tuple[str, str]]:
    return [(f"{j.id} · {j.recipe} → {j.hub_id}", j.id) for j in listing]


def _table(listing: list[Job]) -> list[list[Any]]:
    return [[j.id, j.recipe, j.data, j.state, j.steps, j.hub_id, j.message] for j in listing]


def _status(job: Job, p: Any) -> str:
    speed = f"{p.steps_per_s:.2f} steps/s" if p.steps_per_s else "—"
    left = f", about {p.remaining} left" if p.remaining and job.state == "running" else ""
    figures = " · ".join(f"{k} {v:.4g}" for k, v in sorted(p.figures.items()) if k != "lr")
    warned = "".join(f"\n\n**Warning:** {w}" for w in p.warnings()) + "".join(f"\n\n_Note: {n}_" for n in p.notices)
    return (f"**{job.state}** — step {p.step} / {job.steps} on {job.device} · {speed}{left} · "
            f"{sum(len(v) for v in p.curves.values())} points on the curve\n\n{figures}{warned}\n\n{job.message}")


def _data_files(ctx: AppContext) -> list[str]:
    root = Path(ctx.config.data_dir) if ctx.config.data_dir else None
    if root is None or not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in DATA_SUFFIXES)[:500]

