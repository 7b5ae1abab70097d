"""Reading a multipart/form-data body (OpenAI's /v1/images/edits sends one): bounded in bytes, files and fields
before anything is kept, each field named at most once, the files' bytes in memory (the service decodes them with
its own bounds). Form fields are text: `FormFields` reads them as the types the JSON routes take, with the same
refusals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .body import Fields
from .errors import ApiError

MAX_FIELD = 64 << 10  # a text field: a prompt is at most a few KiB


@dataclass
class Form:
    fields: dict[str, str]
    files: dict[str, bytes]

    def file(self, *names: str, required: bool = True) -> bytes | None:
        """The file sent under the first of `names` that is present (`image` or `image[]`)."""
        for name in names:
            if name in self.files:
                return self.files[name]
            if name in self.fields:
                raise ApiError(400, f"'{name}' must be a file (a multipart part with a filename)", param=name,
                               code="invalid_type")
        if required:
            raise ApiError(400, f"'{names[0]}' is required: the picture, as a file", param=names[0],
                           code="missing_required_parameter")
        return None


async def read_form(request: Request, limit: int, max_files: int = 2, max_fields: int = 32) -> Form:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "the body must be multipart/form-data (the image as a file, the rest as fields)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body has {int(declared)} bytes; the limit is {limit}", code="body_too_large")

    async def bounded() -> AsyncIterator[bytes]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the body is over the limit of {limit} bytes", code="body_too_large")
            yield chunk

    try:
        items = await MultiPartParser(request.headers, bounded(), max_files=max_files, max_fields=max_fields,
                                      max_part_size=MAX_FIELD).parse()
    except MultiPartException as e:
        raise ApiError(400, f"the form could not be read: {e.message}") from None
    form = Form({}, {})
    try:
        for name, value in items.multi_items():
            if name in form.fields or name in form.files:
                raise ApiError(400, f"'{name[:60]}' is given more than once: this server edits one picture a "
                               "request", param=name[:60])
            if isinstance(value, UploadFile):
                form.files[name] = await value.read()
            else:
                form.fields[name] = value
    finally:
        await items.close()
    return form


class FormFields(Fields):
    """Fields whose values came as text: a value is read as the number (or true / false) the route asks for."""

    def get(self, name: str, kind: type | tuple, *args: Any, **kwargs: Any) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        for given in (name, *kwargs.get("aliases", ())):
            value = self.data.get(given)
            if isinstance(value, str) and str not in kinds:
                self.data[given] = _as(value.strip(), kinds)
        return super().get(name, kind, *args, **kwargs)


def _as(text: str, kinds: tuple) -> Any:
    """`text` as the first of `kinds` it reads as; unchanged when none (Fields then names the type it wanted)."""
    for kind in kinds:
        try:
            if kind is bool and text in ("true", "false"):
                return text == "true"
            if kind in (int, float):
                return kind(text)
        except ValueError:
            continue
    return text
