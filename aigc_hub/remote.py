"""Text models served elsewhere: an OpenAI-compatible server (vLLM, TGI, Ollama, another AIGC Hub) as a hub entry.

A remote entry is a folder in the local hub whose `config.json` names the server and the model there:

    {"aigc_hub_remote": {"api": "openai", "base_url": "http://gpu-box:8000/v1", "model": "meta-llama/...",
                         "api_key_env": "VLLM_API_KEY", "chat": true}}

It is listed, picked and served like any text model (the Text tab, the CLI, the app's own /v1); TextService streams
from the server instead of a local decode loop. The key itself is never written: `api_key_env` names the environment
variable that holds it.

Who may make one: only the operator. An entry makes this server connect where it says, with the key of the
variable it names, so it is honoured only in the local hub's own folder, where `python -m aigc_hub remote add`
(added_models.add_remote) writes it; a remote `config.json` anywhere else (a folder a web client uploaded and
added, the Hugging Face cache, a model folder named by path) is refused before any connection. What a remote server
answers is relayed as its status and the status's standard reason only: its body may echo the request's
credentials, or be an internal page.
"""

from __future__ import annotations

import http
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from .errors import GenerationError, ModelLoadError, UserError

KEY = "aigc_hub_remote"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,100}")
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 120  # between two streamed pieces, as the local streams' STREAM_TIMEOUT_S


def check_settings(base_url: object, model: object, api_key_env: object = None) -> None:
    url = urlparse(base_url) if isinstance(base_url, str) else None
    if url is not None and (url.username is not None or url.password is not None):  # never stored nor shown
        raise UserError("the base URL must not carry credentials (user:password@): put the key in an environment "
                        "variable and name it with --api-key-env")
    if url is None or url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise UserError(f"base URL must be http(s)://host[:port]/path, such as http://localhost:8000/v1; got "
                        f"{str(base_url)[:100]!r}")
    if not isinstance(model, str) or not model.strip() or len(model) > 200 or any(c.isspace() for c in model):
        raise UserError(f"the remote model must be its name on that server, got {str(model)[:100]!r}")
    if api_key_env is not None and not (isinstance(api_key_env, str) and ENV_NAME.fullmatch(api_key_env)):
        raise UserError(f"api_key_env must name an environment variable, got {str(api_key_env)[:100]!r}")


def is_remote(config: dict) -> bool:
    return isinstance(config.get(KEY), dict)


def settings_of(config: dict) -> dict:
    settings = config[KEY]
    if settings.get("api", "openai") != "openai":
        raise ModelLoadError(f"remote API {str(settings.get('api'))[:40]!r} is not supported (openai)")
    check_settings(settings.get("base_url"), settings.get("model"), settings.get("api_key_env"))
    return settings


def entry_config(base_url: str, model: str, api_key_env: str | None = None, chat: bool = True) -> dict:
    """The checked `config.json` of a remote entry (added_models.add_remote writes it into the local hub)."""
    check_settings(base_url, model, api_key_env)
    return {KEY: {"api": "openai", "base_url": base_url.rstrip("/"), "model": model, "api_key_env": api_key_env,
                  "chat": bool(chat)}}


@dataclass
class RemoteLM:
    """A client of one model on an OpenAI-compatible server (the official `openai` package: SSE, errors)."""

    base_url: str
    model: str
    chat: bool
    client: Any

    @classmethod
    def connect(cls, settings: dict) -> "RemoteLM":
        """A client, once the server has answered that it serves the model (ModelLoadError if not)."""
        import openai

        env = settings.get("api_key_env")
        key = os.environ.get(env, "") if env else ""
        # openai's own Timeout: its HTTP library (httpx2) refuses another library's (httpx's, since httpx2 2.17)
        client = openai.OpenAI(base_url=settings["base_url"], api_key=key or "none", max_retries=1,
                               timeout=openai.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        remote = cls(settings["base_url"], settings["model"], bool(settings.get("chat", True)), client)
        try:
            served = [m.id for m in client.models.list()]
        except openai.APIError as e:
            raise ModelLoadError(remote.failure(e)) from None
        if remote.model not in served:
            raise ModelLoadError(f"{remote.base_url} does not serve {remote.model!r} (it serves: "
                                 f"{', '.join(served[:10]) or 'nothing'})")
        return remote

    def failure(self, error: Exception) -> str:
        """What a user is told of a remote failure: the status and its standard reason, or the kind of network
        failure. Never the server's own words: a body can echo the Authorization header, or be an internal page."""
        return failure_message(self.base_url, error)

    def open(self, settings: Any, seed: int, prompt: str | None = None, messages: list[dict] | None = None) -> Any:
        """Start a streamed completion (the request is sent and its status read here, so that a refusal is raised
        before any text); iterate `pieces` over the returned stream."""
        import openai

        extra = {}
        if settings.top_k:  # beyond OpenAI's own fields: vLLM, TGI and AIGC Hub take these
            extra["top_k"] = settings.top_k
        if settings.repetition_penalty != 1.0:
            extra["repetition_penalty"] = settings.repetition_penalty
        common = dict(model=self.model, max_tokens=settings.max_new_tokens, temperature=settings.temperature,
                      top_p=settings.top_p, stop=settings.stop or None, seed=seed, stream=True,
                      stream_options={"include_usage": True}, extra_body=extra or None)
        try:
            if messages is not None:
                return self.client.chat.completions.create(messages=messages, **common)
            return self.client.completions.create(prompt=prompt, **common)
        except openai.APIStatusError as e:
            if e.status_code >= 500 or e.status_code in (401, 403, 404, 429):  # the server's state, not the input
                raise ModelLoadError(self.failure(e)) from None
            raise GenerationError(self.failure(e)) from None
        except openai.APIError as e:
            raise ModelLoadError(self.failure(e)) from None

    def pieces(self, response: Any, stream: Any) -> Iterator[str]:
        """The text of a streamed completion as it comes; `stream.tokens` and `stream.prompt_tokens` follow the
        server's usage counts. Closing the iterator closes the connection, which ends the generation there."""
        import openai

        try:
            for chunk in response:
                if chunk.usage is not None:
                    stream.prompt_tokens, stream.tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices:
                    text = choice.delta.content if hasattr(choice, "delta") else choice.text
                    if text:
                        stream.tokens += 1  # a piece is about a token; the usage at the end is exact
                        yield text
                if stream.stop_event.is_set():
                    return
        except openai.APIError as e:
            raise GenerationError(self.failure(e)) from None
        finally:
            response.close()


def failure_message(base_url: str, error: Exception) -> str:
    where = f"the server at {base_url}"
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "an unknown status"
        return f"{where} answered {status} ({reason})"
    import openai

    timed_out = isinstance(error, openai.APITimeoutError)
    return f"{where} cannot be reached: {'it timed out' if timed_out else 'the connection failed'}"


def check_operator_made(path: Path) -> None:
    """Refuse a remote entry that is not in the local hub's own folder (only `remote add` writes one there): one that
    came in any other way would make this server connect, with a key, where a stranger chose."""
    from .paths import hub_home, within

    if not within(path, [hub_home()]):
        raise ModelLoadError(f"{Path(path).name}: a remote entry is honoured only in the local hub, where the "
                             "operator's `python -m aigc_hub remote add` writes it; this one is elsewhere and is "
                             "refused")


def load_remote(path: Path, config: dict, device: str, dtype: Any) -> Any:
    """The family loader: a connected client (no weights, no tokenizer), for an operator-made entry only."""
    from .loaders import Loaded

    check_operator_made(path)
    return Loaded(RemoteLM.connect(settings_of(config)))
