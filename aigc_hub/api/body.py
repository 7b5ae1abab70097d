"""Reading a request body: JSON of bounded size, valid UTF-8, an object; its fields by type and range, each refusal
naming the field (`param` in the error). Unknown fields are refused, except OpenAI fields a client may send with
their neutral value (`user`, `logprobs: null`, ...), so that a typo is not silently ignored."""

from __future__ import annotations

import difflib
import json
import math
from typing import Any, Callable

from starlette.requests import Request

from ..errors import UserError
from .errors import ApiError

MAX_BODY = 1 << 20  # bytes; a translation of the most lines a request takes fits well below it
REQUIRED = object()


async def read_json(request: Request, limit: int = MAX_BODY) -> dict:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body has {int(declared)} bytes; the limit is {limit}", code="body_too_large")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ApiError(413, f"the body is over the limit of {limit} bytes", code="body_too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the body is not valid UTF-8 (byte {e.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the body is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except (RecursionError, ValueError) as e:
        raise ApiError(400, f"the body is not valid JSON: {str(e)[:100] or 'nested too deeply'}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def only(*neutral: Any) -> Callable[[Any], bool]:
    """An OpenAI option this server does not implement, accepted with the value a client sends when it does not use
    it (`logprobs: false`, `presence_penalty: 0`)."""
    return lambda value: value is None or any(value == n and isinstance(value, bool) == isinstance(n, bool)
                                              for n in neutral)


def anything(value: Any) -> bool:
    """An option that changes nothing here (`user`: an end-user id for abuse tracking)."""
    return True


class Fields:
    """The fields of one request body: `fields.get("n", int, 1, lo=1, hi=16)`; unknown ones refused by `done()`."""

    def __init__(self, data: dict, ignorable: dict[str, Callable[[Any], bool]] | None = None) -> None:
        self.data, self.ignorable, self.read = data, ignorable or {}, set()

    def get(self, name: str, kind: type | tuple, default: Any = REQUIRED, lo: float | None = None,
            hi: float | None = None, aliases: tuple[str, ...] = ()) -> Any:
        self.read.update((name, *aliases))
        present = [n for n in (name, *aliases) if n in self.data and self.data[n] is not None]
        if not present:
            if default is REQUIRED:
                near = difflib.get_close_matches(name, [str(k) for k in self.data if k not in self.read], 1, 0.7)
                hint = f" (the body has '{near[0][:40]}': misspelt?)" if near else ""
                raise ApiError(400, f"'{name}' is required{hint}", param=name, code="missing_required_parameter")
            return default
        given = present[0]  # errors name the field as the client wrote it
        value = self.data[given]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                raise ApiError(400, f"'{given}' is out of range", param=given, code="invalid_value") from None
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(_type_name(k) for k in kinds)
            raise ApiError(400, f"'{given}' must be {names}, got {_type_name(type(value))}", param=given,
                           code="invalid_type")
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, f"'{given}' must be a finite number", param=given, code="invalid_value")
        if lo is not None and value < lo or hi is not None and value > hi:
            bound = (f"between {_num(lo)} and {_num(hi)}" if lo is not None and hi is not None
                     else f"≥ {_num(lo)}" if lo is not None else f"≤ {_num(hi)}")
            raise ApiError(400, f"'{given}' must be {bound}, got {_num(value)}", param=given, code="invalid_value")
        return value

    def param(self, spec: Any, name: str | None = None, default: Any = REQUIRED, aliases: tuple[str, ...] = ()
              ) -> Any:
        """A request parameter of the one spec every front end reads (services/params.py), checked by it: an
        out-of-range value gets the refusal the tabs and the CLI give. `name`: this route's name for it; a default of
        None: absent means the service's default (the model's own)."""
        name = name or spec.name
        value = self.get(name, spec.kind, spec.default if default is REQUIRED else default, aliases=aliases)
        if value is None:
            return None
        try:
            return spec.check(value)
        except UserError as e:
            raise ApiError(400, str(e), param=name, code="invalid_value") from None

    def strings(self, name: str, default: Any = REQUIRED, most: int = 64, longest: int = 10_000) -> list[str]:
        """A string or a list of strings, as a list."""
        value = self.get(name, (str, list), default)
        if value is default:
            return value
        items = [value] if isinstance(value, str) else value
        if len(items) > most:
            raise ApiError(400, f"'{name}' has {len(items)} items; the limit is {most}", param=name,
                           code="invalid_value")
        for item in items:
            if not isinstance(item, str):
                raise ApiError(400, f"every item of '{name}' must be a string", param=name, code="invalid_type")
            if len(item) > longest:
                raise ApiError(400, f"an item of '{name}' has {len(item)} characters; the limit is {longest}",
                               param=name, code="invalid_value")
        return items

    def done(self) -> None:
        for name, value in self.data.items():
            if name in self.read:
                continue
            ok = self.ignorable.get(name)
            if ok is None:
                raise ApiError(400, f"unknown parameter '{name[:60]}'", param=name[:60], code="unknown_parameter")
            if not ok(value):
                raise ApiError(400, f"'{name}' is not supported by this server (only its default)", param=name,
                               code="unsupported_parameter")


def _num(value: float | None) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    text = str(value)
    if len(text) <= 20:
        return text
    return f"{value:.3g}" if isinstance(value, float) else f"a {len(text.lstrip('-'))}-digit number"


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
            dict: "an object"}.get(kind, kind.__name__)
