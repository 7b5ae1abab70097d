"""The Image tab: pick a GAN from the hub, generate a reproducible batch, interpolate between two seeds."""

from __future__ import annotations

import zipfile
from pathlib import Path

import gradio as gr

from ..imaging import make_grid, png_bytes, to_pil
from .common import WORK, AppContext, card_markdown, known_model, on_gpu, user_errors
from .inputs import Dropdown, Number, Slider

TASK = "image"


def _label_update(ctx: AppContext, ref: str) -> dict:
    classes = ctx.registry.config_of(ref).get("num_classes", 0)
    return gr.update(choices=["any"] + [str(i) for i in range(classes)], value="any", visible=bool(classes))


def build(ctx: AppContext, tab: gr.Tab) -> None:
    refs = [e.ref for e in ctx.models(TASK)]
    default = ctx.default_model(TASK)
    if default and ctx.config.preload:
        ctx.registry.get(default)  # load now: the first request should not wait for it
    service = ctx.service(TASK)
    classes = ctx.registry.config_of(default).get("num_classes", 0) if default else 0

    with gr.Row():
        # Custom values are allowed so a model pushed while the app runs can be used; each call checks the hub.
        model = Dropdown(refs, value=default, label="Model", elem_id="image-model", scale=2,
                         allow_custom_value=True)
        refresh = gr.Button("↻", scale=0, min_width=40, elem_id="image-refresh")
        card = gr.Markdown(card_markdown(ctx.entry(default, TASK) if default else None, TASK), elem_id="image-card")
    with gr.Row():
        seed = Number(-1, label="Seed (-1 = random)", precision=0, elem_id="image-seed")
        count = Slider(1, ctx.config.max_images, value=16, step=1, label="Images", elem_id="image-count")
        label = Dropdown(["any"] + [str(i) for i in range(classes)], value="any", label="Label",
                         visible=bool(classes), elem_id="image-label")
    button = gr.Button("Generate", variant="primary", elem_id="image-generate")
    gallery = gr.Gallery(label="Images", columns=8, object_fit="contain", height=420, format="png",
                         elem_id="image-gallery")
    with gr.Row():
        used_seed = Number(label="Seed used (image i has seed + i)", precision=0, interactive=False,
                           elem_id="image-used-seed")
        files = gr.File(label="Download: grid + every image (PNGs carry their generation parameters)",
                        file_count="multiple", elem_id="image-files")
    with gr.Accordion("Interpolate between two seeds", open=False):
        with gr.Row():
            seed_a = Number(0, label="From seed", precision=0, elem_id="interp-seed-a")
            seed_b = Number(1, label="To seed", precision=0, elem_id="interp-seed-b")
            frames = Slider(2, 60, value=16, step=1, label="Frames", elem_id="interp-frames")
        interp_button = gr.Button("Interpolate", elem_id="interp-run")
        with gr.Row():
            gif = gr.Image(label="Animation", type="filepath", elem_id="interp-gif")
            strip = gr.Gallery(label="Frames", columns=8, format="png", elem_id="interp-frames-gallery")

    def known(ref: str) -> str:
        return known_model(ctx, ref, TASK)

    @user_errors
    def on_model(ref: str):
        return card_markdown(ctx.entry(known(ref), TASK)), _label_update(ctx, ref)

    def on_refresh(ref: str):
        return gr.update(choices=ctx.refresh(TASK), value=ref)

    @user_errors
    @on_gpu
    def generate(ref: str, seed_value: float, n: float, label_value: str, progress=gr.Progress()):
        ref = known(ref)
        progress(0, desc="waiting for the device")
        with ctx.lane(ref):
            progress(0, desc="generating")
            result = service.generate(ref, n, seed_value, None if label_value in (None, "any") else label_value,
                                      progress=lambda done, total: progress(done / total, desc="generating"))
        out = ctx.scratch("image-")
        paths = []
        for i, s in enumerate(result.seeds):
            path = out / f"seed-{s}.png"
            path.write_bytes(result.png(i))
            paths.append(str(path))
        grid = out / f"grid-seed-{result.seed}.png"
        grid.write_bytes(png_bytes(to_pil(make_grid(result.images)), result.grid_parameters()))
        archive = out / f"images-seed-{result.seed}.zip"
        with zipfile.ZipFile(archive, "w") as zf:  # PNGs are compressed already: store them
            for path in paths:
                zf.write(path, Path(path).name)
        return paths, result.seed, [str(grid), str(archive)]

    @user_errors
    @on_gpu
    def interpolate(ref: str, a: float, b: float, n: float, label_value: str):
        ref = known(ref)
        with ctx.lane(ref):
            images, gif_data = service.interpolate(ref, a, b, n, None if label_value in (None, "any") else label_value)
        out = ctx.scratch("interpolation-")
        (out / "interpolation.gif").write_bytes(gif_data)
        frame_paths = []
        for i, img in enumerate(images):
            to_pil(img).save(out / f"frame-{i:03d}.png")
            frame_paths.append(str(out / f"frame-{i:03d}.png"))
        return str(out / "interpolation.gif"), frame_paths

    model.change(on_model, model, [card, label], api_visibility="private")
    refresh.click(on_refresh, model, model, api_visibility="private")
    button.click(generate, [model, seed, count, label], [gallery, used_seed, files], api_name="generate_image",
                 **WORK)
    interp_button.click(interpolate, [model, seed_a, seed_b, frames, label], [gif, strip], api_name="interpolate",
                        **WORK)
