"""The Image tab: pick a GAN or a diffusion model from the hub, generate a reproducible batch (diffusion: sampler,
steps, a per-step progress bar and a Stop that ends the denoising loop), edit a picture (diffusion models:
image-to-image, inpainting under painted strokes, outpainting), make variations of a result, interpolate between
two seeds."""

from __future__ import annotations

import zipfile
from pathlib import Path

import gradio as gr

from ..errors import UserError
from ..imaging import make_grid, png_bytes, to_pil
from ..models.diffusion import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLER_TITLES
from ..models.text_to_image import DEFAULT_GUIDANCE, SIZE_MULTIPLE
from ..services import ImageRequest
from ..services.image import GenerationStopped, ImageFacts
from ..services.params import IMAGE
from .common import (WORK, AppContext, SessionStops, card_markdown, on_gpu, reveal_after, shared_args,
                     user_errors)
from .image_edit import editor_input, seed_and_label, use_as_input
from .inputs import Dropdown, ImageEditor, Number, spec_slider

TASK = "image"
SAMPLER_CHOICES = [(title, key) for key, title in SAMPLER_TITLES.items()]


def _facts(ctx: AppContext, ref: str | None) -> ImageFacts | None:
    return ctx.service(TASK).facts(ref) if ref else None


MODEL_ARGS = (  # the controls that apply to some image models only (generate_image and interpolate), from the spec
    f"steps: {IMAGE['steps'].help}",
    "sampler: diffusion models only: dpm-solver, ddim, euler, euler-a or ddpm",
    "prompt: text-to-image pipelines only: what to draw",
    "negative_prompt: text-to-image pipelines only: what to steer away from",
    f"guidance_scale: {IMAGE['guidance_scale'].help}",
    f"width: {IMAGE['width'].help}",
    f"height: {IMAGE['height'].help}",
    "class_guidance: class-conditional diffusion models trained with an empty label only: classifier-free "
    "guidance, 1 for none, more to follow the label more strongly (the tab starts at the model's default)",
)


def _model_updates(facts: ImageFacts | None) -> tuple[dict, ...]:
    """Label, steps, sampler, Stop, the prompt group, width, height, the edit group (and its use-this-result
    button) and the cannot-edit note for the chosen model: labels for conditional models, steps to Stop for
    diffusion, the prompt group for text-to-image pipelines (sized at the model's size), editing for the models
    that edit."""
    classes = facts.num_classes if facts else 0
    steps = bool(facts and facts.iterative)
    prompted = bool(facts and facts.prompted)
    edits = bool(facts and facts.edits)
    size = facts.resolution if prompted else gr.update()
    return (gr.update(choices=label_choices(facts), value="any", visible=bool(classes)),
            gr.update(visible=steps), gr.update(visible=steps), gr.update(visible=steps), gr.update(visible=prompted),
            size, size, gr.update(visible=edits), gr.update(visible=edits),
            gr.update(visible=bool(facts) and not edits), gr.update(brush=_brush(facts)),
            gr.update(visible=bool(facts and facts.class_guided),
                      value=facts.default_guidance if facts else 1.0))


def _brush(facts: ImageFacts | None) -> gr.Brush:
    """A brush sized for the model's pictures (Gradio's automatic radius, 25 px, covers a 32 px digit)."""
    return gr.Brush(colors=["#ff0000"], color_mode="fixed",
                    default_size=max(2, (facts.resolution if facts else 512) // 16))


CANNOT_EDIT = ("This model is a GAN: it makes pictures from noise and cannot edit a picture (diffusion models can). "
               "**More like this** works for every model.")


def label_choices(facts: ImageFacts | None) -> list[tuple[str, str]]:
    """"any" and one choice per class, shown with its name when the model has names; the value stays the id."""
    names = facts.class_names if facts else ()
    classes = facts.num_classes if facts else 0
    return [("any", "any")] + [(f"{i} · {names[i]}" if names else str(i), str(i)) for i in range(classes)]


def _prompt_args(ctx: AppContext, ref: str, prompt: str, negative: str, guidance: float, width: float | None,
                 height: float | None, class_guidance: float | None = None) -> dict:
    """The prompt controls, passed on only for text-to-image models, and the class guidance only for class-conditional
    models trained with an empty label (the hidden controls of others are ignored)."""
    facts = _facts(ctx, ref)
    if facts and facts.class_guided:
        return {} if class_guidance is None else dict(guidance_scale=class_guidance)
    if not (facts and facts.prompted):
        return {}
    return dict(prompt=prompt, negative_prompt=negative, guidance_scale=guidance, width=width, height=height)


def build(ctx: AppContext, tab: gr.Tab) -> None:
    refs = [e.ref for e in ctx.models(TASK)]
    default = ctx.default_model(TASK)
    if default and ctx.config.preload:
        ctx.registry.get(default)  # load now: the first request should not wait for it
    service = ctx.service(TASK)
    facts = _facts(ctx, default)
    classes = facts.num_classes if facts else 0
    iterative = bool(facts and facts.iterative)
    prompted = bool(facts and facts.prompted)
    active = SessionStops()  # session → the stop flag of its running image run
    spec = service.params  # the one spec of image parameters, its count bounded by the app's max_images

    with gr.Row():
        # Custom values are allowed so a model pushed while the app runs can be used; each call checks the hub.
        model = Dropdown(refs, value=default, label="Model", elem_id="image-model", scale=2,
                         allow_custom_value=True)
        refresh = gr.Button("↻", scale=0, min_width=40, elem_id="image-refresh")
        card = gr.Markdown(card_markdown(ctx.entry(default, TASK) if default else None, TASK), elem_id="image-card")
    with gr.Column(visible=prompted, elem_id="image-prompt-group") as prompt_group:
        prompt = gr.Textbox("", label="Prompt", lines=2, max_lines=6, elem_id="image-prompt")
        negative = gr.Textbox("", label="Negative prompt", lines=1, max_lines=4, elem_id="image-negative-prompt")
        with gr.Row():
            guidance = spec_slider(spec["guidance_scale"], "Guidance scale", 0.5, elem_id="image-guidance")
            size = facts.resolution if prompted else 512
            width = spec_slider(spec["width"], "Width", SIZE_MULTIPLE, value=size, elem_id="image-width")
            height = spec_slider(spec["height"], "Height", SIZE_MULTIPLE, value=size, elem_id="image-height")
    with gr.Row():
        seed = Number(-1, label="Seed (-1 = random)", precision=0, elem_id="image-seed")
        count = spec_slider(spec["n"], "Images", 1, value=min(16, spec["n"].hi), elem_id="image-count")
        label = Dropdown(label_choices(facts), value="any", label="Label",
                         visible=bool(classes), elem_id="image-label")
    with gr.Row():
        sampler = Dropdown(SAMPLER_CHOICES, value=DEFAULT_SAMPLER, label="Sampler", visible=iterative,
                           elem_id="image-sampler")
        steps = spec_slider(spec["steps"], "Sampling steps", 1, visible=iterative, elem_id="image-steps")
        class_guidance = spec_slider(spec["guidance_scale"], "Class guidance (1: none; more follows the label)", 0.5,
                                     value=facts.default_guidance if facts else 1.0,
                                     visible=bool(facts and facts.class_guided),
                                     elem_id="image-class-guidance")
    with gr.Row():
        button = gr.Button("Generate", variant="primary", elem_id="image-generate")
        stop = gr.Button("Stop", variant="stop", visible=iterative, elem_id="image-stop")
    notice = gr.Markdown(elem_id="image-notice")
    gallery = gr.Gallery(label="Images", columns=8, object_fit="contain", height=420, format="png",
                         elem_id="image-gallery")
    selected = gr.State(None)  # the path of the gallery image last clicked
    with gr.Row():
        vary_seed = Number(None, label="Seed to vary", precision=0, visible=False,  # shown on a click on an image
                           elem_id="image-vary-seed")
        vary_label = gr.Textbox("any", visible=False, elem_id="image-vary-label")  # the clicked image's label
        variation_strength = spec_slider(spec["variation_strength"], "Variation strength", 0.05,
                                         elem_id="image-variation-strength")
        more = gr.Button("More like this", elem_id="image-more-like-this")
        use_result = gr.Button("Use the selected image as the input", visible=bool(facts and facts.edits),
                               elem_id="image-use-result")
    with gr.Row():
        used_seed = Number(label="Seed used (image i has seed + i)", precision=0, interactive=False,
                           visible=False, elem_id="image-used-seed")  # shown with the first result
        files = gr.File(label="Download: grid + every image (PNGs carry their generation parameters)",
                        file_count="multiple", elem_id="image-files")
    cannot_edit = gr.Markdown(CANNOT_EDIT, visible=bool(facts) and not (facts and facts.edits),
                              elem_id="image-cannot-edit")
    with gr.Accordion("Edit a picture: image-to-image, inpainting, outpainting", open=False,
                      visible=bool(facts and facts.edits), elem_id="image-edit-group") as edit_group:
        gr.Markdown("Upload a picture (or use a result). Paint over what should change to inpaint it; without "
                    "strokes the whole picture is redrawn at the strength. It is stretched to the model's size.")
        editor = ImageEditor(type="numpy", image_mode="RGBA", format="png", sources=("upload", "clipboard"),
                                transforms=(), label="Picture (strokes: the mask)", layers=False,
                                brush=_brush(facts), elem_id="image-editor")
        with gr.Row():
            strength = spec_slider(spec["strength"], "Strength (0 keeps the picture, 1 redraws it)", 0.05,
                                   elem_id="image-strength")
            outpaint = gr.Textbox("", label="Outpaint: pixels to add LEFT,TOP,RIGHT,BOTTOM", placeholder="0,0,16,0",
                                  elem_id="image-outpaint")
        edit_button = gr.Button("Edit", variant="primary", elem_id="image-edit")
    with gr.Accordion("Interpolate between two seeds", open=False):
        with gr.Row():
            seed_a = Number(0, label="From seed", precision=0, elem_id="interp-seed-a")
            seed_b = Number(1, label="To seed", precision=0, elem_id="interp-seed-b")
            frames = spec_slider(spec["frames"], "Frames", 1, elem_id="interp-frames")
        interp_button = gr.Button("Interpolate", elem_id="interp-run")
        gif = gr.Image(label="Animation", type="filepath", elem_id="interp-gif")
        # Full width: beside the animation, 8 columns overflowed half the page and the last ones were cut off.
        strip = gr.Gallery(label="Frames", columns=8, format="png", elem_id="interp-frames-gallery")

    def known(ref: str) -> str:
        return ctx.check(ref, TASK)  # UnknownModel / WrongTask: the user's errors, shown by user_errors

    @user_errors
    def on_model(ref: str):
        ref = known(ref)
        return card_markdown(ctx.entry(ref, TASK)), *_model_updates(_facts(ctx, ref))

    def on_refresh(ref: str):
        return gr.update(choices=ctx.refresh(TASK), value=ref)

    @user_errors
    @on_gpu
    @shared_args(*MODEL_ARGS)
    def generate_image(model: str, seed: float, num_images: float, label: str, steps: float = DEFAULT_STEPS,
                       sampler: str = DEFAULT_SAMPLER, prompt: str = "", negative_prompt: str = "",
                       guidance_scale: float = DEFAULT_GUIDANCE, width: float | None = None,
                       height: float | None = None, class_guidance: float | None = None, request: gr.Request = None,
                       progress=gr.Progress()):
        """Generate images with an image model of the hub (a GAN, a diffusion model or a text-to-image pipeline);
        the same seed gives the same images. Returns the images (PNG files that carry their generation parameters),
        the seed used, and a grid PNG with a zip of all images.

        Args:
            model: the model's hub id, e.g. aigc-hub/dcgan-mnist
            seed: -1 for a random seed; image i uses seed + i
            num_images: how many images, 1 to the app's limit (max_images, 64 by default); image i uses seed + i
            label: the class of a class-conditional model (its id or name), or "any" for one of each in turn
        """
        ref = known(model)
        asked = ImageRequest(ref, num_images, seed, None if label in (None, "any") else label, steps, sampler,
                             **_prompt_args(ctx, ref, prompt, negative_prompt, guidance_scale, width, height,
                                           class_guidance))
        return run_and_save(asked, request, progress)

    @user_errors
    @on_gpu
    @shared_args(*MODEL_ARGS)
    def edit_image(model: str, picture: dict, strength: float, outpaint: str, seed: float, num_images: float,
                   label: str, steps: float = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER, prompt: str = "",
                   negative_prompt: str = "", guidance_scale: float = DEFAULT_GUIDANCE, width: float | None = None,
                   height: float | None = None, class_guidance: float | None = None, request: gr.Request = None,
                   progress=gr.Progress()):
        """Edit a picture with a diffusion model of the hub: image-to-image at a strength, inpainting of the
        painted strokes, outpainting. Returns what generate_image returns; each PNG names the input's hash, the
        strength and the mask.

        Args:
            model: the model's hub id (a diffusion model: GANs cannot edit)
            picture: the image editor's value: the picture as its background, strokes (the mask) as its layers
            strength: how much is redrawn, 0 (kept) to 1 (from noise); the last steps × strength steps run
            outpaint: pixels to add LEFT,TOP,RIGHT,BOTTOM before painting them in (empty: none)
            seed: -1 for a random seed; image i uses seed + i
            num_images: how many images; image i uses seed + i
            label: the class of a class-conditional model (its id or name), or "any" for one of each in turn
        """
        ref = known(model)
        image, mask = editor_input(picture)
        asked = ImageRequest(ref, num_images, seed, None if label in (None, "any") else label, steps, sampler,
                             **_prompt_args(ctx, ref, prompt, negative_prompt, guidance_scale, width, height,
                                           class_guidance),
                             image=image, mask=mask, strength=strength, outpaint=outpaint or None)
        return run_and_save(asked, request, progress)

    @user_errors
    @on_gpu
    @shared_args(*MODEL_ARGS)
    def image_variations(model: str, seed: float, num_images: float, label: str, variation_strength: float,
                         steps: float = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER, prompt: str = "",
                         negative_prompt: str = "", guidance_scale: float = DEFAULT_GUIDANCE,
                         width: float | None = None, height: float | None = None,
                         class_guidance: float | None = None, request: gr.Request = None, progress=gr.Progress()):
        """Variations of one image of any image model: image i blends the seed's noise with that of a new random
        seed + i, at the variation strength. Returns what generate_image returns.

        Args:
            model: the model's hub id
            seed: the seed of the image to vary
            num_images: how many variations
            label: the class of the image (its id or name) for a class-conditional model, or "any"
            variation_strength: how far from the image, 0 (the same) to 1 (another seed's)
        """
        ref = known(model)
        asked = ImageRequest(ref, num_images, seed, None if label in (None, "any") else label, steps, sampler,
                             **_prompt_args(ctx, ref, prompt, negative_prompt, guidance_scale, width, height,
                                           class_guidance),
                             variation_seed=-1, variation_strength=variation_strength)
        return run_and_save(asked, request, progress)

    def run_and_save(asked: ImageRequest, request: gr.Request, progress: gr.Progress):
        """Run on the device lane (Stop ends it between steps); the PNGs, the grid and the zip written."""
        try:
            with active.running(request) as event:  # a session's new run replaces its old one
                progress(0, desc="waiting for the device")
                with ctx.admit(asked.model, TASK):
                    progress(0, desc="generating")
                    result = service.run(asked, lambda done, total: progress(done / total, desc="generating"),
                                         stop=event)
        except GenerationStopped:  # Stop's own answer says so in the notice
            return [], None, None
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
    @shared_args(*MODEL_ARGS)
    def interpolate(model: str, seed_a: float, seed_b: float, frames: float, label: str,
                    steps: float = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER, prompt: str = "",
                    negative_prompt: str = "", guidance_scale: float = DEFAULT_GUIDANCE, width: float | None = None,
                    height: float | None = None, class_guidance: float | None = None, request: gr.Request = None):
        """Morph between the images of two seeds of an image model (spherical interpolation of their noise).
        Returns an animated GIF and its frames as PNG files.

        Args:
            model: the model's hub id, e.g. aigc-hub/dcgan-mnist
            seed_a: the seed of the first frame
            seed_b: the seed of the last frame
            frames: how many frames (2 to 120)
            label: the class of a class-conditional model (its id or name), or "any"
        """
        ref = known(model)
        try:
            with active.running(request) as event, ctx.admit(ref, TASK):
                images, gif_data = service.interpolate(ref, seed_a, seed_b, frames,
                                                       None if label in (None, "any") else label,
                                                       steps=steps, sampler=sampler, stop=event,
                                                       **_prompt_args(ctx, ref, prompt, negative_prompt,
                                                                      guidance_scale, width, height, class_guidance))
        except GenerationStopped:
            raise gr.Error("Stopped.") from None
        out = ctx.scratch("interpolation-")
        (out / "interpolation.gif").write_bytes(gif_data)
        frame_paths = []
        for i, img in enumerate(images):
            to_pil(img).save(out / f"frame-{i:03d}.png")
            frame_paths.append(str(out / f"frame-{i:03d}.png"))
        return str(out / "interpolation.gif"), frame_paths

    def stop_images(request: gr.Request):
        """Stop this session's running image generation (a diffusion run ends before its next step)."""
        return active.stop(request)

    def on_select(evt: gr.SelectData):
        path = (evt.value or {}).get("image", {}).get("path")
        try:
            seed_of, label_of = seed_and_label(path)
        except UserError:  # not an image this tab made: nothing to vary
            return path, gr.update(), gr.update()
        return path, seed_of, "any" if label_of is None else str(label_of)

    prompt_inputs = [prompt, negative, guidance, width, height, class_guidance]
    model.change(on_model, model, [card, label, steps, sampler, stop, prompt_group, width, height, edit_group,
                                   use_result, cannot_edit, editor, class_guidance], api_visibility="private")
    refresh.click(on_refresh, model, model, api_visibility="private")
    tab.select(on_refresh, model, model, api_visibility="private")  # a model the Train tab just published
    reveal_after(button.click(generate_image, [model, seed, count, label, steps, sampler, *prompt_inputs],
                              [gallery, used_seed, files], api_name="generate_image", **WORK), used_seed)
    button.click(lambda: "", None, notice, api_visibility="private", queue=False)  # a new run: no old notice
    interp_button.click(interpolate, [model, seed_a, seed_b, frames, label, steps, sampler, *prompt_inputs],
                        [gif, strip],
                        api_name="interpolate", **WORK)
    reveal_after(gallery.select(on_select, None, [selected, vary_seed, vary_label], api_visibility="private"),
                 vary_seed)
    use_result.click(user_errors(use_as_input), selected, editor, api_visibility="private")
    reveal_after(edit_button.click(edit_image, [model, editor, strength, outpaint, seed, count, label, steps, sampler,
                                                *prompt_inputs], [gallery, used_seed, files], api_name="edit_image",
                                   **WORK), used_seed)
    edit_button.click(lambda: "", None, notice, api_visibility="private", queue=False)
    reveal_after(more.click(image_variations, [model, vary_seed, count, vary_label, variation_strength, steps, sampler,
                                               *prompt_inputs], [gallery, used_seed, files],
                            api_name="image_variations", **WORK), used_seed)
    # Stop runs outside the device lane (it must not queue behind the run it stops): it sets the flag, and the
    # denoising loop ends before its next step.
    stop.click(stop_images, None, notice, api_name="stop_images", concurrency_limit=None)
