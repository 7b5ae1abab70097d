"""The Text tab's chat view, shown for models whose tokenizer ships a chat template: message history, system prompt,
the tab's sampling controls and seed, streaming, Stop, Regenerate and Clear. `/chat` is its API endpoint: it takes
the history so far and the new message, and streams the history with the assistant's answer growing at its end."""

from __future__ import annotations

import gradio as gr

from ..errors import GenerationError
from ..services import SamplingSettings, TextRequest
from .common import (SAMPLING_ARGS, WORK, AppContext, SessionStops, cleared, on_gpu, shared_args,
                     reveal_after, streamed, user_errors)
from .inputs import Chatbot

TASK = "text"


def plain_messages(history: object) -> list[dict]:
    """Chatbot messages as the service takes them: role and text. Gradio 6 hands content over as a list of parts
    ({"type": "text", "text": …}); API clients may send plain strings. Non-text parts are left out."""
    if not isinstance(history, list):
        raise GenerationError("the chat history must be a list of {'role', 'content'} messages")
    out = []
    for m in history:
        if not isinstance(m, dict):
            raise GenerationError("the chat history must be a list of {'role', 'content'} messages")
        content = m.get("content")
        parts = content if isinstance(content, list) else [content]
        text = "".join(p if isinstance(p, str) else str(p.get("text") or "") if isinstance(p, dict) else ""
                       for p in parts)
        out.append({"role": m.get("role"), "content": text})
    return out


def build(ctx: AppContext, model: gr.Dropdown, controls: list[gr.components.Component],
          sessions: SessionStops, outputs: tuple[gr.Number, gr.Markdown],
          visible: bool) -> tuple[gr.Column, gr.Chatbot]:
    """The chat view's components and events. `controls`: max new tokens, temperature, top-k, top-p, repetition
    penalty, stop strings, seed (the tab's own). `sessions` holds each session's running generation, shared with
    the text view. Returns the view's column and its chat history (cleared when the model changes)."""
    service = ctx.service(TASK)
    used_seed, notice = outputs
    with gr.Column(visible=visible, elem_id="chat-view") as view:
        chatbot = Chatbot(label="Chat", height=420, elem_id="chat-history", buttons=["copy"])
        with gr.Row():
            message = gr.Textbox(label="Message", placeholder="Write a message; Enter sends it", lines=1, scale=4,
                                 elem_id="chat-message")
            send = gr.Button("Send", variant="primary", scale=0, min_width=80, elem_id="chat-send")
        with gr.Row():
            stop = gr.Button("Stop", variant="stop", elem_id="chat-stop")
            again = gr.Button("Regenerate", elem_id="chat-regenerate")
            clear = gr.Button("Clear", elem_id="chat-clear")
        system = gr.Textbox("", label="System prompt (empty: none)", lines=2, elem_id="chat-system")

    @user_errors
    @on_gpu
    @shared_args(*SAMPLING_ARGS)
    def chat(model, message, history, system_prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
             stop_strings, seed, request: gr.Request):
        """Send a message to a chat model of the hub (one whose tokenizer has a chat template) and stream its
        answer. Returns the conversation with the answer, an empty message box, the seed used and a notice.

        Args:
            model: the model's hub id
            message: the user's new message
            history: the conversation so far, as [{"role": "user" | "assistant", "content": text}] ([] to start)
            system_prompt: instructions for the model (empty: none)
        """
        messages = plain_messages(history or [])
        if not isinstance(message, str) or not message.strip():
            raise GenerationError("the message is empty")
        messages.append({"role": "user", "content": message})
        yield from _answer(model, messages, system_prompt, max_new_tokens, temperature, top_k, top_p,
                           repetition_penalty, stop_strings, seed, request, "")

    @user_errors
    @on_gpu
    @shared_args(*SAMPLING_ARGS)
    def chat_regenerate(model, history, system_prompt, max_new_tokens, temperature, top_k, top_p,
                        repetition_penalty, stop_strings, seed, request: gr.Request):
        """Answer the last user message of a conversation again (the last answer is replaced).

        Args:
            model: the model's hub id
            history: the conversation, as [{"role": "user" | "assistant", "content": text}]
            system_prompt: instructions for the model (empty: none)
        """
        messages = plain_messages(history or [])
        while messages and messages[-1]["role"] == "assistant":  # answer the last user message again
            messages.pop()
        if not messages:
            raise GenerationError("nothing to regenerate: send a message first")
        yield from _answer(model, messages, system_prompt, max_new_tokens, temperature, top_k, top_p,
                           repetition_penalty, stop_strings, seed, request, None)

    def _answer(ref, messages, system_prompt, n, temp, k, p, rep, stops, seed_value, request, box):
        settings = SamplingSettings(n, temp, k, p, rep, [s for s in (stops or "").splitlines() if s])
        keep = gr.update() if box is None else box  # Send clears the message box; Regenerate leaves it
        with sessions.running(request) as event:
            with ctx.admit(ref, TASK) as ref:
                asked = TextRequest(ref, messages=messages, system=system_prompt, settings=settings, seed=seed_value)
                stream, = service.run(asked, [event])
                for answer, note in streamed(stream, event):
                    yield [*messages, {"role": "assistant", "content": answer}], keep, stream.seed, note
                if cleared(event):  # its last update agrees with Clear's, whichever the page gets last
                    yield [], "", stream.seed, ""

    sampling = [system, *controls]
    outs = [chatbot, message, used_seed, notice]
    reveal_after(send.click(chat, [model, message, chatbot, *sampling], outs, api_name="chat", **WORK), used_seed)
    reveal_after(message.submit(chat, [model, message, chatbot, *sampling], outs, api_visibility="private", **WORK),
                 used_seed)
    def stop_chat(request: gr.Request) -> str:
        """Stop this session's running chat answer; it ends within a token."""
        return sessions.stop(request)

    reveal_after(again.click(chat_regenerate, [model, chatbot, *sampling], outs, api_name="chat_regenerate", **WORK),
                 used_seed)
    stop.click(stop_chat, None, notice, api_name="stop_chat", concurrency_limit=None)

    def clear_chat(request: gr.Request):
        # An answer still streaming would write itself back into the cleared history: end it first.
        sessions.clear(request)
        return [], "", ""

    clear.click(clear_chat, None, [chatbot, message, notice], api_visibility="private", concurrency_limit=None)
    return view, chatbot
