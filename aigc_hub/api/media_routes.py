"""GET /v1/models, POST /v1/images/generations, POST /v1/images/edits and POST /v1/translations (an extra route in the same style: OpenAI
has none for text-to-text translation). A body becomes the service's typed request (services/requests.py), its
values checked by the one spec (services/params.py) the tabs and the CLI read."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import UserError
from ..services import editing
from ..services.params import TRANSLATION
from ..services.requests import ImageRequest, TranslationRequest
from ..services.translation import MAX_LINE_CHARS, MAX_LINES
from .body import Fields, anything, only, read_json
from .errors import ApiError
from .form import FormFields, read_form

TRANSLATION_BODY = 8 << 20  # the most lines of the longest, as UTF-8 (CJK: 3 bytes a character), and the JSON
SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
EDIT_BODY = 2 * editing.MAX_INPUT_BYTES + (1 << 20)  # a picture, a mask and the fields
IMAGE_IGNORABLE = {"user": anything, "quality": only("auto", "standard"), "style": only("natural", "vivid"),
                   "moderation": anything}


def model_object(entry: Any) -> dict:
    created = 0
    if entry.path is not None:
        try:
            created = int(entry.path.stat().st_mtime)
        except OSError:
            pass
    owner = entry.ref.split("/")[0] if "/" in entry.ref and entry.source != "folder" else entry.source
    return {"id": entry.ref, "object": "model", "created": created, "owned_by": owner, "task": entry.task,
            "source": entry.source}


async def list_models(api: Any, request: Request) -> Response:
    entries = await api.work(api.ctx.models)
    return JSONResponse({"object": "list", "data": [model_object(e) for e in entries if e.task]})


async def get_model(api: Any, request: Request) -> Response:
    ref = request.path_params["model"]
    entries = await api.work(api.ctx.models)
    entry = next((e for e in entries if e.ref == ref and e.task), None)
    if entry is None:
        raise ApiError(404, f"the hub lists no model {ref[:100]!r}", param="model", code="model_not_found")
    return JSONResponse(model_object(entry))


async def images(api: Any, request: Request) -> Response:
    spec = api.ctx.service("image").params  # its count bounded by the app's max_images
    f = Fields(await read_json(request), IMAGE_IGNORABLE)
    asked, prompt, size = _image_fields(api, f, spec)
    f.done()
    return JSONResponse(await api.work(lambda: _make_images(api, asked, prompt, size)))


async def image_edits(api: Any, request: Request) -> Response:
    """OpenAI's multipart edit: `image` (a file), `mask` (optional, a PNG whose transparent pixels are repainted:
    OpenAI's rule), the prompt and the rest as fields; this server's own fields as in /v1/images/generations, plus
    `strength` and `outpaint`."""
    spec = api.ctx.service("image").params
    form = await read_form(request, min(EDIT_BODY, api.ctx.config.max_upload_mb << 20))  # the operator's bound
    f = FormFields(form.fields, {**IMAGE_IGNORABLE, "background": only("auto"), "input_fidelity": anything,
                                 "output_format": only("png"), "partial_images": only(0)})
    asked, prompt, size = _image_fields(api, f, spec)
    asked.image = form.file("image", "image[]")
    mask = form.file("mask", required=False)
    asked.strength = f.param(spec["strength"], default=None)
    asked.outpaint = f.get("outpaint", str, None)
    f.done()

    def work() -> dict:
        if mask is not None:
            try:
                asked.mask = editing.mask_from_alpha(mask)
            except UserError as e:
                raise ApiError(400, str(e), param="mask", code="invalid_value") from None
        return _make_images(api, asked, prompt, size)

    return JSONResponse(await api.work(work))


def _image_fields(api: Any, f: Fields, spec: dict) -> tuple[ImageRequest, str, str]:
    """The fields both image routes take, as the service's request (its model, prompt and size settled by
    `_make_images`, which knows the model)."""
    ref = f.get("model", str, api.ctx.config.model_for("image"))
    prompt = f.get("prompt", str, "")
    n = f.param(spec["n"])
    size = f.get("size", str, "auto")
    if f.get("response_format", str, "b64_json") != "b64_json":
        raise ApiError(400, "response_format must be b64_json: this server keeps no image URLs",
                       param="response_format")
    asked = ImageRequest(ref, n, f.param(spec["seed"]), f.get("label", (int, str), None),
                         f.param(spec["steps"], default=None), f.get("sampler", str, None),
                         negative_prompt=f.get("negative_prompt", str, None),
                         guidance_scale=f.param(spec["guidance_scale"], default=None))
    return asked, prompt, size


def _make_images(api: Any, asked: ImageRequest, prompt: str, size: str) -> dict:
    """Run the request on the checked model (blocking: in a thread) and answer as OpenAI does."""
    service = api.ctx.service("image")
    checked = api.model(asked.model, "image")
    facts = service.facts(checked)
    asked.model = checked
    if facts.prompted:
        asked.prompt = prompt
        if size != "auto":
            asked.width, asked.height = _size(size)
    else:
        if size not in ("auto", f"{facts.resolution}x{facts.resolution}"):
            raise ApiError(400, f"{checked} draws {facts.resolution}x{facts.resolution} images: size must be "
                           "that or auto", param="size")
        if prompt.strip():  # the prompt of a class-conditional model names the class ("7", "Flags")
            if asked.label is not None:
                raise ApiError(400, "give the class as the prompt or as label, not both", param="label")
            if not facts.num_classes:
                raise ApiError(400, f"{checked} is unconditional: send an empty prompt", param="prompt")
            asked.label = prompt
    with api.admit(checked, "image"):
        result = service.run(asked)
    data = [{"b64_json": base64.b64encode(result.png(i)).decode(), "revised_prompt": None}
            for i in range(len(result.seeds))]  # encoded after the lane is free: the device serves the next
    return {"created": int(time.time()), "data": data, "model": checked, "seed": result.seed,
            "seeds": result.seeds, "labels": result.labels}


def _size(size: str) -> tuple[int, int]:
    match = SIZE.fullmatch(size)
    if not match:
        raise ApiError(400, f"size must be WIDTHxHEIGHT (such as 512x512) or auto, got {size[:30]!r}", param="size")
    return int(match[1]), int(match[2])


async def translations(api: Any, request: Request) -> Response:
    f = Fields(await read_json(request, TRANSLATION_BODY), {"user": anything})
    ref = f.get("model", str)
    texts = f.get("input", (str, list))  # a text (one sentence per line, as in the tab) or a list of lines
    if isinstance(texts, list):
        texts = f.strings("input", most=MAX_LINES, longest=MAX_LINE_CHARS)
    src = f.get("source_language", str)
    tgt = f.get("target_language", str)
    beams = f.param(TRANSLATION["beams"])
    n_best = f.param(TRANSLATION["n_best"])  # and against the beam size, by the service
    f.done()

    def work() -> dict:
        with api.admit(ref, "translation") as checked:
            result = api.ctx.service("translation").run(TranslationRequest(checked, texts, src, tgt, beams, n_best))
        data = [{"index": i, "text": line.text,
                 "alternatives": [{"text": c.text, "score": c.score} for c in line.alternatives]}
                for i, line in enumerate(result.lines)]
        return {"object": "translation", "created": int(time.time()), "model": checked, "source_language": src,
                "target_language": tgt, "data": data, "notices": result.notices}

    return JSONResponse(await api.work(work))
