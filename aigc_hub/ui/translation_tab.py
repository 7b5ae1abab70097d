"""The Translation tab: one sentence per line, translated as a batch, with beam size and n-best alternatives."""

from __future__ import annotations

import gradio as gr

from ..models.translation_conventions import language_name
from ..services import TranslationRequest
from ..services.params import TRANSLATION
from .common import WORK, AppContext, card_markdown, on_gpu, shared_args, user_errors
from .inputs import Dropdown, spec_slider

TASK = "translation"


def named(codes) -> list[tuple[str, str]]:
    """Dropdown choices: the language's name with its code shown, the code as the value (what the API takes)."""
    return [(language_name(c), c) for c in codes]


def build(ctx: AppContext, tab: gr.Tab) -> None:
    refs = [e.ref for e in ctx.models(TASK)]
    default = ctx.default_model(TASK)
    if default and ctx.config.preload:
        ctx.registry.get(default)
    service = ctx.service(TASK)
    conv = service.convention(default) if default else None
    first = conv.default() if conv else (None, None)

    with gr.Row():
        model = Dropdown(refs, value=default, label="Model", elem_id="translation-model", scale=2,
                         allow_custom_value=True)
        refresh = gr.Button("↻", scale=0, min_width=40, elem_id="translation-refresh")
        card = gr.Markdown(card_markdown(ctx.entry(default, TASK) if default else None, TASK),
                           elem_id="translation-card")
    with gr.Row():
        # Custom values allowed: the lists follow the picked model, an API call may name any model, and the
        # service says which directions that model knows.
        src = Dropdown(named(conv.sources if conv else []), value=first[0], label="From", elem_id="translation-src",
                       allow_custom_value=True)
        swap = gr.Button("⇄", scale=0, min_width=40, elem_id="translation-swap")
        tgt = Dropdown(named(conv.targets if conv else []), value=first[1], label="To", elem_id="translation-tgt",
                       allow_custom_value=True)
        beams = spec_slider(TRANSLATION["beams"], "Beam size", 1, elem_id="translation-beams")
        n_best = spec_slider(TRANSLATION["n_best"], "Alternatives (n-best)", 1, elem_id="translation-n-best")
    with gr.Row():
        # Lines the shipped starter gets right (not every greeting: README, Translation).
        source = gr.Textbox("Hello.\nGood morning.\nHow are you?", label="Input (one sentence per line)",
                            lines=8, elem_id="translation-input")
        output = gr.Textbox(label="Translation", lines=8, elem_id="translation-output", buttons=["copy"])
    run = gr.Button("Translate", variant="primary", elem_id="translation-run")
    alternatives = gr.Dataframe(headers=["line", "rank", "translation", "score"], label="Alternatives",
                                interactive=False, elem_id="translation-alternatives")
    notice = gr.Markdown(label="Notice", elem_id="translation-notice")

    @user_errors
    @on_gpu
    @shared_args(f"beam_size: {TRANSLATION['beams'].help}", f"n_best: {TRANSLATION['n_best'].help}")
    def translate(model, text, source_language, target_language, beam_size, n_best, progress=gr.Progress()):
        """Translate text, one sentence per line, with a translation model of the hub. Returns the translation
        (line by line), a table of the alternatives with their scores, and a notice.

        Args:
            model: the model's hub id, e.g. aigc-hub/translator-en-zh
            text: the text to translate, one sentence per line (at most 1000 lines)
            source_language: the language code of the text, e.g. en
            target_language: the language code to translate into, e.g. zh
        """
        with ctx.admit(model, TASK) as ref:
            asked = TranslationRequest(ref, text, source_language, target_language, beam_size, n_best)
            result = service.run(asked, lambda done, total: progress((done, total), unit="sentences"))
        table = [[i + 1, k + 1, c.text, None if c.score is None else round(c.score, 4)]
                 for i, line in enumerate(result.lines)
                 for k, c in enumerate(line.alternatives)]
        return result.text, table, " · ".join(result.notices)

    @user_errors
    def on_model(ref: str):
        ref = ctx.check(ref, TASK)
        conv = service.convention(ref)
        a, b = conv.default()
        return (card_markdown(ctx.entry(ref, TASK)), gr.update(choices=named(conv.sources), value=a),
                gr.update(choices=named(conv.targets), value=b))

    run.click(translate, [model, source, src, tgt, beams, n_best], [output, alternatives, notice],
              api_name="translate", **WORK)
    swap.click(lambda a, b, text, out: (b, a, out or text, ""), [src, tgt, source, output], [src, tgt, source, output],
               api_visibility="private")
    model.change(on_model, model, [card, src, tgt], api_visibility="private")
    refresh.click(lambda ref: gr.update(choices=ctx.refresh(TASK), value=ref), model, model,
                  api_visibility="private")
    # On entering the tab: a model the Train tab just published is listed.
    tab.select(lambda ref: gr.update(choices=ctx.refresh(TASK), value=ref), model, model, api_visibility="private")
