"""The Text tab: stream a continuation from a causal LM, with presets, sampling controls, seed and a real Stop; models
whose tokenizer ships a chat template get the chat view instead (chat_view.py)."""

from __future__ import annotations


import gradio as gr

from ..services import SamplingSettings, TextRequest
from ..services.params import TEXT
from ..errors import UserError
from . import chat_view as chat_view_ui
from .common import (SAMPLING_ARGS, WORK, AppContext, SessionStops, card_markdown, on_gpu,
                     reveal_after, shared_args, streamed, user_errors)
from .inputs import Dropdown, Number, spec_slider

TASK = "text"
PRESETS = {  # temperature, top_k, top_p, repetition_penalty
    "precise": (0.3, 20, 0.9, 1.1),
    "balanced": (0.8, 50, 0.95, 1.0),
    "creative": (1.1, 0, 0.98, 1.0),
}


def build(ctx: AppContext, tab: gr.Tab) -> None:
    refs = [e.ref for e in ctx.models(TASK)]
    default = ctx.default_model(TASK)
    if default and ctx.config.preload:
        ctx.registry.get(default)
    service = ctx.service(TASK)
    stops_of_sessions = SessionStops()  # one running generation per session, text or chat view

    def has_chat(ref: str | None) -> bool:
        try:
            return bool(ref) and service.has_chat(ref)
        except UserError:  # a model that cannot be read: the text view, which will say why on use
            return False

    with gr.Row():
        model = Dropdown(refs, value=default, label="Model", elem_id="text-model", scale=2,
                         allow_custom_value=True)
        refresh = gr.Button("↻", scale=0, min_width=40, elem_id="text-refresh")
        card = gr.Markdown(card_markdown(ctx.entry(default, TASK) if default else None, TASK), elem_id="text-card")
    with gr.Row():
        preset = gr.Radio(list(PRESETS), value="balanced", label="Preset", elem_id="text-preset")
        seed = Number(-1, label="Seed (-1 = random)", precision=0, elem_id="text-seed")
        seed.spec = TEXT["seed"]
    with gr.Accordion("Sampling", open=False):
        with gr.Row():
            max_new = spec_slider(TEXT["max_new_tokens"], "Max new tokens", 1, value=300, elem_id="text-max-new")
            temperature = spec_slider(TEXT["temperature"], "Temperature (0 = greedy)", 0.05,
                                      elem_id="text-temperature")
            top_k = spec_slider(TEXT["top_k"], "Top-k (0 = off)", 1, elem_id="text-top-k")
        with gr.Row():
            top_p = spec_slider(TEXT["top_p"], "Top-p", 0.01, elem_id="text-top-p")
            penalty = spec_slider(TEXT["repetition_penalty"], "Repetition penalty", 0.05, elem_id="text-penalty")
            stop_strings = gr.Textbox("", label="Stop strings (one per line)", lines=2, elem_id="text-stop-strings")
    is_chat = has_chat(default)
    with gr.Column(visible=not is_chat, elem_id="text-view") as text_view:
        prompt = gr.Textbox("ROMEO:", label="Prompt", lines=4, elem_id="text-prompt")
        with gr.Row():
            run = gr.Button("Generate", variant="primary", elem_id="text-generate")
            stop = gr.Button("Stop", variant="stop", elem_id="text-stop")
        output = gr.Textbox(label="Output", lines=12, elem_id="text-output", buttons=["copy"])
    # Shared by both views, shown below them: made first, placed after the chat view.
    used_seed = Number(label="Seed used", precision=0, interactive=False, visible=False, elem_id="text-used-seed",
                       render=False)  # shown with the first text
    notice = gr.Markdown(label="Notice", elem_id="text-notice", render=False)
    controls = [max_new, temperature, top_k, top_p, penalty, stop_strings, seed]
    chat_view, chat_history = chat_view_ui.build(ctx, model, controls, stops_of_sessions, (used_seed, notice),
                                                 is_chat)
    with gr.Row():
        used_seed.render()
        notice.render()

    @user_errors
    @on_gpu
    @shared_args(*SAMPLING_ARGS)
    def generate_text(model, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty, stop_strings,
                      seed, request: gr.Request):
        """Continue a text with a causal language model of the hub, streamed as it is generated. Returns the text,
        the seed used and a notice (a prompt cut to the context, a sliding window).

        Args:
            model: the model's hub id, e.g. aigc-hub/gpt-tinyshakespeare
            prompt: the text to continue
        """
        settings = SamplingSettings(max_new_tokens, temperature, top_k, top_p, repetition_penalty,
                                    [s for s in (stop_strings or "").splitlines() if s])
        with stops_of_sessions.running(request) as event:
            with ctx.admit(model, TASK) as ref:  # the lane is held while the stream runs
                stream, = service.run(TextRequest(ref, prompt=prompt, settings=settings, seed=seed), [event])
                for out, note in streamed(stream, event):
                    yield out, stream.seed, note

    def on_preset(name: str):
        t, k, p, r = PRESETS.get(name, PRESETS["balanced"])
        return t, k, p, r

    @user_errors
    def on_model(ref: str):
        ref = ctx.check(ref, TASK)
        chat = has_chat(ref)  # the chat view for chat models, the text view for the others; a new model: a new chat
        return (card_markdown(ctx.entry(ref, TASK)), gr.update(visible=chat), gr.update(visible=not chat),
                gr.update(value=[]))

    def stop_text(request: gr.Request) -> str:
        """Stop this session's running text generation; it ends within a token."""
        return stops_of_sessions.stop(request)

    reveal_after(run.click(generate_text, [model, prompt, max_new, temperature, top_k, top_p, penalty, stop_strings,
                                           seed], [output, used_seed, notice], api_name="generate_text", **WORK),
                 used_seed)
    # Stop runs outside the device lane (it must not queue behind the generation it stops). It only sets the flag:
    # the generation ends within a token and its stream closes with a last "Stopped." update. (With `cancels=`, the
    # browser's cancellation could land after Stop's answer under load and leave the notice in an error state.)
    # A client that goes away ends the computation too: the stream's `finally` sets the flag.
    stop.click(stop_text, None, notice, api_name="stop_text", concurrency_limit=None)
    preset.change(on_preset, preset, [temperature, top_k, top_p, penalty], api_visibility="private")
    model.change(on_model, model, [card, chat_view, text_view, chat_history], api_visibility="private")
    refresh.click(lambda ref: gr.update(choices=ctx.refresh(TASK), value=ref), model, model,
                  api_visibility="private")
    # On entering the tab: a model the Train tab just published is listed.
    tab.select(lambda ref: gr.update(choices=ctx.refresh(TASK), value=ref), model, model, api_visibility="private")
