"""The shipped starter: what `python app.py` shows on a fresh machine, and what its card promises."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from gradio_client import Client

from aigc_hub import hub
from aigc_hub.cards import read_card
from conftest import run
from test_end_to_end import app_process  # noqa: F401  (fixture)

STARTER = "aigc-hub/dcgan-mnist"


def test_starter_is_shipped_with_its_figures():
    folder = hub.STARTERS_ROOT / STARTER
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
    assert not list(folder.glob("*.bin")) and not (folder / "checkpoints").exists()
    card = read_card(folder)
    figures = {f.metric_type: f.value for f in card.figures}
    assert figures["conditional-accuracy"] >= 0.95
    assert figures["frechet-distance-classifier"] >= figures["frechet-distance-floor"] > 0
    assert card.datasets == ["mnist"] and "CC BY-SA" in (folder / "README.md").read_text()


def test_starter_really_draws_the_asked_digits(tmp_hub):
    """The card's accuracy, re-checked on fresh seeds with the project's own classifier."""
    from aigc_hub.evaluation.classifier import load_classifier
    from aigc_hub.services import ImageService

    result = ImageService().generate(STARTER, 1000, seed=123_456)
    images = torch.from_numpy(result.images).permute(0, 3, 1, 2)
    predicted = load_classifier()(images).argmax(1).numpy()
    assert (predicted == np.array(result.labels)).mean() >= 0.95


@pytest.mark.slow  # a subprocess
def test_cli_generates_10000_samples(tmp_hub, tmp_path):
    out = tmp_path / "s.npz"
    proc = run([sys.executable, "-m", "aigc_hub", "generate", "image", "--model", STARTER, "--num", "10000",
                "--seed", "0", "--out", str(out)], env={"AIGC_HUB_HOME": str(tmp_hub)})
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as data:
        assert data["images"].shape == (10000, 32, 32, 1) and data["seeds"][-1] == 9999


@pytest.mark.slow  # a subprocess
def test_fresh_app_serves_the_starter(app_process):  # noqa: F811
    client = Client(app_process(), verbose=False)  # no options: the defaults a new user gets
    gallery, seed, _ = client.predict(STARTER, 0, 10, "any", api_name="/generate_image")
    assert seed == 0 and len(gallery) == 10
    _, table, _ = client.predict(STARTER, "auto", api_name="/load_model")
    assert next(r for r in table["data"] if r[0] == STARTER)[1] == "starter"


TEXT_STARTER = "aigc-hub/gpt-tinyshakespeare"


def test_text_starter_loads_with_stock_transformers_and_states_its_figures():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = hub.STARTERS_ROOT / TEXT_STARTER
    card = read_card(folder)
    figures = {f.metric_type: f.value for f in card.figures}
    assert 0 < figures["nats-per-char"] < 2.0 and figures["perplexity"] > 1
    assert card.pipeline_tag == "text-generation" and card.datasets == ["tinyshakespeare"]
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    ids = tok("ROMEO:", return_tensors="pt").input_ids
    text = tok.decode(model.generate(ids, max_new_tokens=40, do_sample=False)[0])
    assert text.startswith("ROMEO:") and len(text) > 30


@pytest.mark.slow  # a subprocess
def test_fresh_app_streams_the_text_starter(app_process):  # noqa: F811
    client = Client(app_process(), verbose=False)
    job = client.submit(TEXT_STARTER, "ROMEO:", 60, 0.8, 50, 0.95, 1.0, "", 1, api_name="/generate_text")
    chunks = [o[0] for o in job]
    assert len(chunks) > 1 and len(chunks[-1]) > 20


@pytest.mark.slow  # 1,000 tokens on a CPU
def test_text_starter_writes_1000_characters_past_its_128_token_context(tmp_hub):
    from aigc_hub.services import TextService
    from aigc_hub.services.text import SamplingSettings

    text, stream = TextService().generate(TEXT_STARTER, "ROMEO:", SamplingSettings(max_new_tokens=1000), seed=0)
    assert stream.tokens == 1000 and len(text) == 1000  # character-level: a token per character
    assert any("the window slides" in n for n in stream.notices)
    assert text.count("\n") > 10 and ":" in text[500:]  # verse with speakers all the way, not noise after a slide
