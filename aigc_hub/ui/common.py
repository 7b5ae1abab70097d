"""What the tabs share: the app core (core.py) as the UI makes it, error handling, sessions and streamed updates."""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import logging
import threading
import uuid
from typing import Any, Callable, Iterator

import gradio as gr

from .. import hub
from ..config import AppConfig
from ..core import AppContext
from ..errors import UserError, report_internal
from ..families import TASKS
from ..services import ModelRegistry
from ..services.params import TEXT

logger = logging.getLogger("aigc_hub.ui")


def ui_context(config: AppConfig, registry: ModelRegistry) -> AppContext:
    """The app core (core.py) with what Gradio needs of it: results are served from the scratch folder as they are
    (Gradio would hash and copy each file into its cache first: 29 of an image request's 180 ms); its folders have
    random names and live an hour, as cached files do (delete_cache in app.py), and go when the app exits."""
    ctx = AppContext(config, registry)
    gr.set_static_paths([ctx.scratch_root])
    atexit.register(ctx.close)
    return ctx


def shared_args(*lines: str) -> Callable[[Callable], Callable]:
    """Append `Args:` lines that several handlers share to a handler's docstring, whose own `Args:` section comes
    last. Gradio's API page and its MCP tools read parameter descriptions from there. Apply it below `user_errors`,
    which copies the docstring when it wraps."""

    def add(fn: Callable) -> Callable:
        fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n" + "\n".join(f"    {line}" for line in lines)
        return fn

    return add


SAMPLING_ARGS = (  # from the one spec of text parameters (services/params.py), as /v1 and the CLI read it
    *(f"{name}: {TEXT[name].help}" for name in ("max_new_tokens", "temperature", "top_k", "top_p",
                                                 "repetition_penalty")),
    "stop_strings: strings that end the generation, one per line; the text ends just before the first that comes",
    f"seed: {TEXT['seed'].help}",
)


def refusal(fn_name: str, e: Exception) -> gr.Error:
    """The gr.Error a handler's exception becomes: the user's errors with their message; anything else logged with a
    short id and shown as an internal error naming that id."""
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, UserError):
        return gr.Error(str(e), print_exception=False)
    return gr.Error(report_internal(logger, e, fn_name), print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """The user's errors become a visible gr.Error with their message (refusal())."""

    if inspect.isgeneratorfunction(fn):  # streaming handlers fail while iterated, not when called

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise refusal(fn.__name__, e) from None

        return stream

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise refusal(fn.__name__, e) from None

    return wrapper


def in_notice(fn: Callable, status_of: int = 0) -> Callable:
    """A browser event's handler whose refusal leaves the page as it was: the message in a warning toast (and, with
    `status_of` outputs, in the first: a status line), every other output untouched. A raised gr.Error would put an
    error badge on each output of the event: tables, dropdowns, curves, until a refresh."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            message = refusal(fn.__name__, e).message
            gr.Warning(message)
            return (f"**Refused:** {message}", *[gr.skip()] * (status_of - 1)) if status_of else gr.skip()

    return wrapper


def ui_and_api(trigger: Any, fn: Callable, inputs: Any, outputs: list, api_name: str, **options: Any) -> None:
    """`trigger` runs `fn` for the browser with refusals in_notice (the first output: the status line); the API
    endpoint `api_name` (gradio_client, MCP) is the same function on a hidden twin, whose refusals are errors, as a
    client expects."""
    # The twin first, named explicitly: Gradio names an event after its function, and a second `load_model` would
    # become `load_model_1`.
    gr.Button(visible=False, render=True).click(fn, inputs, outputs, api_name=api_name, **options)
    trigger.click(in_notice(fn, len(outputs)), inputs, outputs, api_name=f"{api_name}_in_browser",
                  api_visibility="private", **options)


def reveal_after(event: Any, component: Any) -> None:
    """Show `component` (hidden until then) once `event` has succeeded: a Number with no value yet renders "0",
    and "Seed used: 0" before any run reads as a fact. Done in a private step after the event, so that the event's
    API output stays the plain value (an update would reach gradio_client as a dict)."""
    event.success(lambda: gr.update(visible=True), None, component, api_visibility="private", queue=False)


def on_gpu(fn: Callable) -> Callable:
    """`spaces.GPU(fn)` where the `spaces` package is importable (ZeroGPU Spaces attach a GPU only inside such
    functions, and it is a no-op on other hardware); `fn` itself everywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    gpu = getattr(spaces, "GPU", None)  # (this repository's own spaces/ folder is importable from its root)
    return gpu(fn) if callable(gpu) else fn


def card_markdown(entry: hub.ModelEntry | None, task: str | None = None) -> str:
    if entry is None:
        return (f"_No {TASKS[task].title.lower()} model in the hub yet: {TASKS[task].train_hint}._" if task
                else "_Model not found in the hub listing._")
    return f"**{entry.card.title or entry.ref}** ({entry.source}) — {entry.card.summary()}"


def from_mcp(request: gr.Request | None) -> bool:
    """Whether a request is a tool call of Gradio's MCP server: its one gradio_client, one session for every MCP
    caller, marks its requests so."""
    headers = getattr(request, "headers", None) or {}
    return headers.get("x-gradio-user") == "mcp"


class SessionStops:
    """One running generation per browser session, with its stop flag: a new one stops the session's old one, Stop
    sets the flag (the generation ends within a token), and the flag is set when the stream ends however it ends
    (a closed connection included), so the computation never outlives its consumer.

    Every MCP tool call is a session of its own: Gradio's MCP server sends all its callers' calls through one client
    (one session), so one caller's call must neither end another's nor be stopped by another's stop tool."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._finished: dict[str, threading.Event] = {}  # set once the session's generation has sent its last update

    @staticmethod
    def _session(request: gr.Request | None) -> str:
        if from_mcp(request):
            return f"mcp-{uuid.uuid4().hex}"  # never the same twice: nothing else can reach it
        return getattr(request, "session_hash", None) or "anonymous"

    @contextlib.contextmanager
    def running(self, request: gr.Request) -> Iterator[threading.Event]:
        session, event = self._session(request), threading.Event()
        old = self._events.get(session)
        if old is not None:
            old.set()
        self._events[session] = event
        finished = self._finished[session] = threading.Event()
        try:
            yield event
        finally:
            event.set()
            finished.set()
            if self._events.get(session) is event:  # a session's entries go with its last generation
                del self._events[session]
            if self._finished.get(session) is finished:
                del self._finished[session]

    def stop(self, request: gr.Request) -> str:
        if from_mcp(request):
            return "Nothing to stop: an MCP tool call runs in a session of its own; cancel the call itself."
        event = self._events.get(self._session(request))
        if event is not None:
            event.set()
        return "Stopped." if event is not None else "Nothing was running."

    def clear(self, request: gr.Request, timeout: float = 30.0) -> None:
        """Stop the session's generation as cleared (its stream's last update then shows nothing, see `streamed`)
        and wait until it has sent that update, so that it cannot overwrite what the caller shows next."""
        session = self._session(request)
        event, finished = self._events.get(session), self._finished.get(session)
        if event is not None:
            event.cleared = True  # type: ignore[attr-defined]
            event.set()
        if finished is not None:
            finished.wait(timeout)


def cleared(event: threading.Event) -> bool:
    """Whether the session's generation was ended by Clear (`SessionStops.clear`)."""
    return getattr(event, "cleared", False)


class UpdateBudget:
    """Streamed updates per second for the whole app, shared by the streams running now. Gradio's work per update
    (postprocessing, the event, the server-sent message; then the client's parsing) does not shrink with the update,
    so under load token-by-token updates cost more than the tokens (profile: a 64-token stream sent 67 updates, at
    2.4 ms of postprocessing each). One stream updates up to `per_s` times a second, about a screen's frame
    rate; n streams each every n / `per_s` seconds, taking the tokens of that interval together (32 users × 3
    requests: a budget of 50 gave 7.0-7.8 requests/s, 200 gave 5.9-6.4, and text p50 5.8-6.6 s against 7.3-8.3)."""

    def __init__(self, per_s: float) -> None:
        self.per_s, self.running = per_s, 0
        self._lock = threading.Lock()

    def interval(self) -> float:
        return self.running / self.per_s

    @contextlib.contextmanager
    def share(self) -> Iterator[None]:
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1


UPDATES = UpdateBudget(per_s=50)


def streamed(stream: Any, event: threading.Event) -> Iterator[tuple[str, str]]:
    """(text so far, notice) as a text stream's pieces arrive, paced by the app's update budget; when it was stopped,
    a last update says so (whatever order Stop's own answer arrived in). Cleared: no more updates (the caller shows
    the cleared state)."""
    note, text = " · ".join(stream.notices), ""
    yield text, note
    stream.pace = UPDATES.interval
    with UPDATES.share():
        for piece in stream.chunks:
            if cleared(event):
                return
            text += piece
            yield text, note
    if event.is_set() and not cleared(event):
        yield text, " · ".join([*stream.notices, "Stopped."])


# Model work is admitted by Gradio's queue without a per-event limit and gated by the device lanes (see
# services/lanes.py): Gradio's concurrency_id is fixed per event and cannot follow a model to another device.
WORK = dict(concurrency_id="model-work", concurrency_limit=None)
