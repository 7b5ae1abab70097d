"""The shipped colour starter `aigc-hub/dcgan-twemoji`: 64 px RGBA emoji in 10 named groups, a card that states its
figures on held-out emoji and the CC BY 4.0 attribution, and the emoji groups it draws, judged on fresh seeds."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from gradio_client import Client
from PIL import Image

from aigc_hub import hub
from aigc_hub.cards import read_card
from aigc_hub.evaluation.classifier import SHIPPED
from test_end_to_end import app_process  # noqa: F401  (fixture)

STARTER = "aigc-hub/dcgan-twemoji"
FOLDER = hub.STARTERS_ROOT / STARTER
GROUPS = ["Activities", "Animals & Nature", "Component", "Flags", "Food & Drink", "Objects", "People & Body",
          "Smileys & Emotion", "Symbols", "Travel & Places"]


def test_starter_is_shipped_with_figures_on_held_out_emoji_and_the_attribution():
    assert {"config.json", "model.safetensors", "README.md", "sample.png"} <= {p.name for p in FOLDER.iterdir()}
    config = json.loads((FOLDER / "config.json").read_text())
    assert (config["resolution"], config["channels"], config["class_names"]) == (64, 4, GROUPS)
    card = read_card(FOLDER)
    figures = {f.metric_type: f.value for f in card.figures}
    assert figures["frechet-distance-classifier"] > figures["frechet-distance-floor"] > 0
    assert 0 < figures["conditional-accuracy"] <= figures["classifier-accuracy-real"] + 0.1
    text = (FOLDER / "README.md").read_text()
    assert card.datasets == ["twemoji"] and card.license == "cc-by-4.0"
    assert "CC BY 4.0" in text and "Twemoji" in text and "dcgan-twemoji.sh" in text and "Training budget" in text
    assert "twemoji held-out (391)" in text  # the grouped 10 % split, not the training images


def test_shipped_judge_states_its_held_out_accuracy():
    report = json.loads((SHIPPED["twemoji"] / "evaluation.json").read_text())
    assert report["class_names"] == GROUPS and report["held_out_images"] == 391 and report["accuracy"] > 0.7


def test_starter_draws_the_asked_groups_by_name(tmp_hub):
    """Asked by group name, in RGBA; the shipped judge puts fresh samples in the asked group well above chance."""
    from aigc_hub.evaluation.classifier import load_classifier
    from aigc_hub.services import ImageService

    service = ImageService()
    flags = service.generate(STARTER, 4, seed=7, label="Flags")
    assert flags.labels == [3] * 4 and Image.open(io.BytesIO(flags.png(0))).mode == "RGBA"
    result = service.generate(STARTER, 200, seed=424_242)  # 200: the margin below is over 3 standard errors
    images = torch.from_numpy(result.images).permute(0, 3, 1, 2)
    predicted = load_classifier("twemoji")(images).argmax(1).numpy()
    card_accuracy = {f.metric_type: f.value for f in read_card(FOLDER).figures}["conditional-accuracy"]
    assert (predicted == np.array(result.labels)).mean() >= max(0.3, card_accuracy - 0.1)  # chance is 10 %


@pytest.mark.slow  # an app subprocess
def test_fresh_app_serves_the_colour_starter(app_process):  # noqa: F811
    client = Client(app_process(), verbose=False)
    gallery, seed, _ = client.predict(STARTER, 3, 4, "7", api_name="/generate_image")
    assert seed == 3 and len(gallery) == 4
    assert Image.open(gallery[0]["image"]).size == (64, 64)
