"""Chat with a causal LM whose tokenizer ships a chat template: messages checked, the model's own template applied
(transformers' `apply_chat_template`, never a template of ours), the oldest turns left out when the history outgrows
the context. The generation itself is TextService's (streaming, Stop, seeds, sliding window)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import GenerationError
from ..validation import check_text

MAX_MESSAGES = 200
MAX_MESSAGE_CHARS = 50_000
ROLES = ("user", "assistant")


def template_in_folder(path: Path) -> bool:
    """A chat template in a model folder: `chat_template.jinja` (transformers 5 writes it), `chat_template.json`, or
    `chat_template` in `tokenizer_config.json` (older saves)."""
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def check_messages(messages: object, system: object = None) -> tuple[list[dict], str | None]:
    """Messages as OpenAI writes them (system or developer messages first, then user and assistant turns; content
    as text or a list of text parts) → [{"role": "user" | "assistant", "content": str}], the last one the user's,
    and the system prompt: `system` and the system messages, joined (None when there is none). The one
    normalisation of chat messages, for every front end; clear GenerationErrors for anything else. Idempotent."""
    if not isinstance(messages, list) or not messages:
        raise GenerationError("no messages: the chat needs at least the user's message")
    if len(messages) > MAX_MESSAGES:
        raise GenerationError(f"{len(messages)} messages; the limit is {MAX_MESSAGES} (clear the chat)")
    if system is not None and not isinstance(system, str):
        raise GenerationError("the system prompt must be text")
    head = [system] if system and system.strip() else []
    checked: list[dict] = []
    for i, m in enumerate(messages):
        where = f"message {i + 1}"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise GenerationError(f"{where}: expected {{'role': 'user' | 'assistant', 'content': text}}")
        role, content = m["role"], _text(m.get("content"), where)
        if role in ("system", "developer"):
            if checked:
                raise GenerationError(f"{where}: a system message must come before the conversation")
            if content.strip():
                head.append(content)
        elif role in ROLES:
            checked.append({"role": role, "content": check_text(content, where, MAX_MESSAGE_CHARS)})
        else:
            raise GenerationError(f"{where}: role {role[:30]!r} is not supported (system, user, assistant)")
    if not checked or checked[-1]["role"] != "user":
        raise GenerationError("the last message must be the user's")
    return checked, check_text("\n\n".join(head), "system prompt", MAX_MESSAGE_CHARS) if head else None


def _text(content: object, where: str) -> str:
    """A message's content: text, or text parts ({"type": "text", "text": …}) joined; none is empty."""
    if content is None:
        return ""
    if isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                   for p in content):
            raise GenerationError(f"{where}: only text content parts are supported")
        return "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise GenerationError(f"{where}: the content must be text")
    return content


def chat_prompt(tokenizer, messages: object, system: object, room: int, ref: str) -> tuple[torch.Tensor, list[str]]:
    """The token ids of the conversation up to the assistant's turn, at most `room` of them: the oldest turns go
    first (in user + assistant pairs; the system prompt and the last message stay), then the rest is cut from the
    left. Notices say what was left out."""
    messages, system = check_messages(messages, system)
    if not getattr(tokenizer, "chat_template", None):
        raise GenerationError(f"{ref} has no chat template: use the text view (plain continuation)")
    head = [{"role": "system", "content": system}] if system else []
    notices, dropped = [], 0
    while True:
        try:
            ids = tokenizer.apply_chat_template(head + messages, add_generation_prompt=True, return_dict=True,
                                                return_tensors="pt")["input_ids"]
        except Exception as e:  # the model's own Jinja template raises for what it does not take (a system role…)
            raise GenerationError(f"{ref}'s chat template refused these messages: {str(e)[:200]}") from None
        if ids.shape[1] <= room or len(messages) == 1:
            break
        cut = 2 if len(messages) > 2 else 1
        messages, dropped = messages[cut:], dropped + cut
    if dropped:
        notices.append(f"the {dropped} oldest messages were left out: the chat outgrew the context")
    if ids.shape[1] > room:
        notices.append(f"the message was cut to its last {room} of {ids.shape[1]} tokens (context)")
        ids = ids[:, -room:]
    return ids, notices
