"""Rows that teach a shared model (`train_text.py --base_model`, the Train tab's preview): their formats, and each
row as the text the model reads with the character spans it learns to write. No torch: the app reads it too.

Formats (the first row's keys decide; every row must follow it):
- `{"prompt", "completion"}`: the completion is learned (TRL's completion-only loss), the prompt is context.
- `{"messages": [{"role", "content"}, ...]}`: rendered with the base's own chat template; the assistant turns are
  learned (their text and the template's end-of-turn marks), never the user's or system's words.
- `{"text"}` (or another text column): the whole text, packed into blocks as when training from scratch.
"""

from __future__ import annotations

from typing import Any

FORMATS = ("text", "prompt-completion", "chat")
Spans = list[tuple[int, int]]  # [start, end) character ranges of the text that are learned


def row_format(columns: Any, text_column: str = "text") -> str:
    """Which of FORMATS rows with these columns are (ValueError naming the choices when none)."""
    columns = set(columns)
    if "messages" in columns:
        return "chat"
    if {"prompt", "completion"} <= columns:
        return "prompt-completion"
    if text_column in columns:
        return "text"
    raise ValueError(f"rows with columns {sorted(map(str, columns))[:10]}: expected {text_column!r}, 'prompt' and "
                     "'completion', or 'messages' (a chat)")


def texts_of(row: dict) -> list[str]:
    """The text a row holds (its prompt and completion, or its messages' contents)."""
    if isinstance(row.get("messages"), list):
        return [m["content"] for m in row["messages"] if isinstance(m, dict) and isinstance(m.get("content"), str)]
    return [v for k, v in row.items() if k in ("prompt", "completion", "text") and isinstance(v, str)]


def prompt_completion(row: dict) -> tuple[str, Spans]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str) or not completion:
        raise ValueError("prompt and completion must be text, the completion not empty")
    return prompt + completion, [(len(prompt), len(prompt) + len(completion))]


def chat(row: dict, tokenizer: Any) -> tuple[str, Spans]:
    """The conversation through the base's chat template, and each assistant turn's span in it: from the end of the
    prompt that asks for it (rendered with `add_generation_prompt=True`, as the app asks) to the end of the turn."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise ValueError("messages must be a list of {role, content} with text content")
    if not any(m.get("role") == "assistant" for m in messages):
        raise ValueError("no assistant turn to learn from")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("chat rows need a base model with a chat template; this one has none: use prompt / "
                         "completion rows")
    render = tokenizer.apply_chat_template
    spans: Spans = []
    done = ""  # the conversation rendered up to the last assistant turn seen
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        prompt = render(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = render(messages[: i + 1], tokenize=False)
        if not (prompt.startswith(done) and upto.startswith(prompt)):
            raise ValueError("the base's chat template does not render a conversation as the start of its "
                             "continuation; use prompt / completion rows")
        spans.append((len(prompt), len(upto)))
        done = upto
    return render(messages, tokenize=False), spans


def learned_text(row: dict, fmt: str, tokenizer: Any) -> tuple[str, Spans]:
    """A row of `fmt` as the model reads it, and the spans it learns (ValueError for a row that does not fit)."""
    if fmt == "chat":
        return chat(row, tokenizer)
    if fmt == "prompt-completion":
        return prompt_completion(row)
    raise ValueError(f"{fmt} rows are packed text: every character is learned")


def preview(rows: list[dict], fmt: str, tokenizer: Any, limit: int = 3) -> str:
    """Markdown of the first rows as the model sees them, the learned spans in bold: the Train tab's preview."""
    blocks = []
    for n, row in enumerate(rows[:limit], 1):
        try:
            text, spans = learned_text(row, fmt, tokenizer)
        except ValueError as e:
            blocks.append(f"row {n}: {e}")
            continue
        parts, at = [], 0
        for a, b in spans:
            parts += [_code(text[at:a]), f"**{_code(text[a:b])}**"]
            at = b
        parts.append(_code(text[at:]))
        blocks.append(f"row {n}: " + "".join(p for p in parts if p not in ("", "****")))
    return "\n\n".join(blocks)


def _code(text: str) -> str:
    """Text shown as it is (template marks, new lines) inside markdown."""
    import html

    return html.escape(text).replace("\n", "⏎<br>").replace("*", "&#42;").replace("_", "&#95;")
