"""The Models tab: every model the hub knows, which are loaded where, Load / Unload, and adding a model by HF id or
folder (remembered across restarts)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import added_models, devices
from ..backends import NAMES as BACKEND_NAMES
from .common import AppContext, ui_and_api, user_errors
from .inputs import Dropdown

HEADERS = ["model", "source", "loaded on", "task", "data", "figures"]


def table(ctx: AppContext) -> list[list[str]]:
    loaded = {m.ref: m.describe().split(" on ", 1)[1] for m in ctx.registry.loaded()}
    rows = []
    for e in ctx.models():
        figs = "; ".join(f"{f.name}: {f.value:.4g}" for f in e.card.figures) or "—"
        kind = f"{e.family}, on {e.base}" if e.base else e.family
        task = f"{e.task} ({kind})" if e.family else "not servable" if e.path else "not downloaded"
        rows.append([e.ref, e.source, loaded.get(e.ref, ""), task,
                     ", ".join(e.card.datasets) or "?", figs])
    return rows


def device_markdown(ctx: AppContext) -> str:
    """The devices, and on which of them a training job runs now (beside the models served there)."""
    training = ctx.jobs.running_on() if "train" in ctx.config.tabs else {}
    parts = [d.describe() + (f" — training job {training[d.name].id} ({training[d.name].recipe})"
                             if d.name in training else "") for d in devices.inventory()]
    engines = getattr(ctx.registry, "engines", lambda: [])()  # `engine: process`: each device's engine process
    if engines:
        parts.append("engines: " + ", ".join(e.describe() for e in engines))
    return "**Devices:** " + " · ".join(parts)


def build(ctx: AppContext, tab: gr.Tab) -> None:
    refs = [e.ref for e in ctx.models()]
    device_names = ["auto"] + [d.name for d in devices.inventory()]
    models = gr.Dataframe(table(ctx), headers=HEADERS, interactive=False, label="Models", elem_id="models-table")
    inventory = gr.Markdown(device_markdown(ctx), label="Devices", elem_id="models-devices")
    with gr.Row():
        ref = gr.Dropdown(refs, value=refs[0] if refs else None, label="Model", elem_id="models-ref",
                          allow_custom_value=True)
        device = gr.Dropdown(device_names, value="auto", label="Device", elem_id="models-device",
                             allow_custom_value=True)
        backend = Dropdown(["configured", *BACKEND_NAMES], value="configured", label="Backend",
                              elem_id="models-backend")
    with gr.Row():
        load = gr.Button("Load", variant="primary", elem_id="models-load")
        unload = gr.Button("Unload", elem_id="models-unload")
        refresh = gr.Button("Refresh", elem_id="models-refresh")
    with gr.Row():
        new_ref = gr.Textbox(label="Add a model", placeholder="HF id owner/name[@rev], or a model folder",
                             elem_id="models-add-ref", scale=3)
        add = gr.Button("Add", elem_id="models-add")
        remove = gr.Button("Remove from list", elem_id="models-remove")
    status = gr.Markdown(label="Status", elem_id="models-status")

    @user_errors
    def load_model(name: str, where: str, runtime: str = "configured"):
        """Load a model of the hub onto a device (it stays loaded for the next requests), on a backend.

        Args:
            name: the model's hub id
            where: auto (the best device that fits it), cpu or cuda:N
            runtime: configured (the app's setting), transformers, or ctranslate2 (translation and causal LMs)
        """
        if name not in [e.ref for e in ctx.models()]:
            raise gr.Error(f"unknown model {str(name)[:100]!r}: pick one from the list", print_exception=False)
        if not isinstance(where, str) or not where.strip():  # (names not on this machine: the registry says so)
            raise gr.Error("no device given: auto, or one of the devices listed", print_exception=False)
        entry = ctx.registry.load(name, None if where == "auto" else where,
                                  None if runtime in (None, "configured") else runtime)
        return f"Loaded {entry.describe()}", table(ctx), device_markdown(ctx)

    @user_errors
    def unload_model(name: str):
        """Free the memory a loaded model holds; it loads again at its next use.

        Args:
            name: the model's hub id
        """
        if name not in {e.ref for e in ctx.models()} | {m.ref for m in ctx.registry.loaded()}:
            raise gr.Error(f"unknown model {str(name)[:100]!r}: pick one from the list", print_exception=False)
        done = ctx.registry.unload(name)
        return (f"Unloaded {name}" if done else f"{name} was not loaded"), table(ctx), device_markdown(ctx)

    @user_errors
    def add_model(name: str):
        """Add a model to the app's list: a Hugging Face Hub id (owner/name or owner/name@revision) or a model folder
        on the server under the folders its operator allows. It is checked (it resolves, a family serves it) before
        it is listed.

        Args:
            name: the HF Hub id, or the folder
        """
        # checked (resolves, a family serves it) before it is remembered; a web client's folder only under the
        # operator's model_dirs, its download capped
        entry = added_models.add(name, folder_roots=[Path(d).expanduser() for d in ctx.config.model_dirs],
                                 max_download_bytes=ctx.config.max_download_mb << 20,
                                 never_under=[Path(gr.utils.get_upload_folder()), ctx.scratch_root])
        figs = "; ".join(f"{f.name}: {f.value:.4g}" for f in entry.card.figures) or "no measured figures"
        return (f"Added {entry.ref}: {entry.task} ({entry.family}), in the {entry.task} tab · {figs}", table(ctx),
                device_markdown(ctx), gr.update(choices=ctx.refresh(), value=entry.ref))

    @user_errors
    def remove_model(name: str):
        """Remove a model that was added by hand from the app's list (the files are kept).

        Args:
            name: the id or folder it was added as
        """
        if not added_models.remove(name):
            raise gr.Error(f"{str(name)[:100]!r} was not added by hand", print_exception=False)
        return f"Removed {name} from the list", table(ctx), device_markdown(ctx), gr.update(choices=ctx.refresh())

    def list_models():
        """Read the hub again. Returns the models (id, task, family, source, device when loaded, measured figures),
        the devices with their memory, and the model list."""
        return table(ctx), device_markdown(ctx), gr.update(choices=ctx.refresh())

    ui_and_api(load, load_model, [ref, device, backend], [status, models, inventory], "load_model",
               concurrency_id="admin")
    ui_and_api(unload, unload_model, ref, [status, models, inventory], "unload_model", concurrency_id="admin")
    ui_and_api(add, add_model, new_ref, [status, models, inventory, ref], "add_model", concurrency_id="admin")
    ui_and_api(remove, remove_model, new_ref, [status, models, inventory, ref], "remove_model",
               concurrency_id="admin")
    refresh.click(list_models, None, [models, inventory, ref], api_name="list_models", concurrency_id="admin")
    tab.select(list_models, None, [models, inventory, ref], api_visibility="private")  # always show the state now
