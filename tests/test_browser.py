"""Every tab driven the way a user meets it: headless Chromium (Debian's `chromium`) through Playwright.

Screenshots go to test-artifacts/browser/ (git-ignored). Selectors are the components' `elem_id`s. CI installs
Chromium (`.ci/run`); elsewhere the tests skip when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from aigc_hub import hub
from conftest import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
SHOTS = ARTIFACTS / "browser"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (apt-get install -y chromium)")
        pytest.skip("no /usr/bin/chromium: install Debian's chromium package to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, launched, tmp_hub, long_lm):
    hub.push(long_lm, "me/long-lm")
    # The starters are the default models of the Image, Text and Translation tabs. Model work inline: the Stop test
    # counts denoising steps in this process (test_engine.py serves the tabs through an engine process).
    url, _ = launched(engine="inline")
    pg = browser.new_page(viewport={"width": 1280, "height": 1400})
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url)
    pg.wait_for_selector("#image-generate")
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield pg
    pg.close()


def pick(pg, elem_id: str, value: str) -> None:
    """Choose `value` in a Gradio dropdown by typing it and taking the matching option."""
    box = pg.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    pg.locator("ul[role=listbox] li", has_text=value).first.click()


def set_number(pg, elem_id: str, value: int) -> None:
    """Type `value` into a Number or Slider and wait until the component holds it (a slider mounting inside an
    opening accordion can reset what was typed too early: type again until it sticks)."""
    from playwright.sync_api import expect

    field = pg.locator(f"#{elem_id} input[type=number]").first
    slider = pg.locator(f"#{elem_id} input[type=range]")
    deadline = time.time() + TIMEOUT_MS / 1000
    while True:
        field.wait_for(state="visible")
        field.fill(str(value))
        field.press("Enter")
        try:
            expect(field).to_have_value(str(value), timeout=2_000)
            if slider.count():
                expect(slider.first).to_have_value(str(value), timeout=2_000)
            return
        except AssertionError:
            assert time.time() < deadline, f"#{elem_id} never took {value}"


def generate_images(pg, steps: int, count: int, seed: int) -> None:
    """Set steps, count and seed, press Generate, wait for the run to answer with that seed and count."""
    set_number(pg, "image-steps", steps)
    set_number(pg, "image-count", count)
    set_number(pg, "image-seed", seed)
    pg.click("#image-generate")
    pg.wait_for_function(f"document.querySelector('#image-used-seed input')?.value === '{seed}'")
    assert pg.locator("#image-gallery .grid-wrap img").count() == count


def value_of(pg, selector: str) -> str:
    return pg.locator(selector).first.input_value()


def test_interpolation_frames_fit_the_page(page):
    """16 frames in 8 columns: beside the animation the last columns were cut off; every frame is seen whole."""
    pick(page, "image-model", "aigc-hub/dcgan-mnist")
    page.get_by_text("Interpolate between two seeds").click()
    set_number(page, "interp-frames", 16)
    page.click("#interp-run")
    page.wait_for_function("document.querySelectorAll('#interp-frames-gallery .grid-wrap img').length === 16")
    right = page.locator("#interp-frames-gallery").bounding_box()
    edges = [box["x"] + box["width"] for box in (img.bounding_box() for img in
                                                 page.locator("#interp-frames-gallery .grid-wrap img").all())]
    assert max(edges) <= right["x"] + right["width"], (edges, right)


def test_image_tab_generates_the_asked_number_of_images(page):
    from playwright.sync_api import expect

    expect(page.locator("#image-used-seed")).to_be_hidden()  # no "Seed used: 0" before a run
    pick(page, "image-model", "aigc-hub/dcgan-mnist")
    set_number(page, "image-seed", 42)
    set_number(page, "image-count", 6)
    page.click("#image-generate")
    page.wait_for_function("document.querySelectorAll('#image-gallery .thumbnail-item img, "
                           "#image-gallery .grid-wrap img').length >= 6")
    page.wait_for_function("document.querySelector('#image-used-seed input')?.value === '42'")
    expect(page.locator("#image-used-seed")).to_be_visible()
    page.screenshot(path=str(SHOTS / "image.png"), full_page=True)
    images = page.locator("#image-gallery .grid-wrap img").count()
    assert images == 6


def test_image_tab_diffusion_sampler_steps_and_stop(page, tmp_path, monkeypatch):
    """A diffusion model shows its sampler and steps; Stop ends the denoising loop itself (the server counts the
    steps it ran), not only the display; the asked sampler and steps make the next images."""
    from playwright.sync_api import expect

    from aigc_hub.models import diffusion
    from conftest import make_diffusion

    runs: list[dict] = []  # per denoising call (one per UNet batch): steps asked, steps run, how it ended
    real = diffusion.denoise

    def counted(*args, on_step=None, **kwargs):
        run = {"asked": kwargs["steps"], "ran": 0, "ended": "running"}
        runs.append(run)

        def step(done, total):
            run["ran"] = done
            if on_step:
                on_step(done, total)

        try:
            out = real(*args, on_step=step, **kwargs)
        except diffusion.Stopped:
            run["ended"] = "stopped"
            raise
        run["ended"] = "done"
        return out

    monkeypatch.setattr(diffusion, "denoise", counted)  # the app runs in this process

    hub.push(make_diffusion(tmp_path / "ddpm", resolution=32, width=(32, 64)), "me/slow-ddpm")
    page.click("#image-refresh")
    expect(page.locator("#image-sampler")).to_be_hidden()  # the GAN starter takes no sampler
    pick(page, "image-model", "me/slow-ddpm")
    expect(page.locator("#image-sampler")).to_be_visible()
    expect(page.locator("#image-steps")).to_be_visible()
    set_number(page, "image-count", 64)
    set_number(page, "image-steps", 200)  # tens of seconds of denoising
    page.click("#image-generate")
    page.wait_for_function("document.querySelector('#image-gallery').innerText.includes('generating')")
    page.click("#image-stop")
    expect(page.locator("#image-notice")).to_contain_text("Stopped", timeout=TIMEOUT_MS)
    # The stopped run answers after the step it was in; until then the page ignores a new click on Generate.
    page.wait_for_function("!document.querySelector('#image-gallery').innerText.includes('generating')")
    pick(page, "image-sampler", "DDIM")
    generate_images(page, steps=3, count=4, seed=5)
    stopped, last = runs[0], runs[-1]
    assert stopped["asked"] == 200 and stopped["ended"] == "stopped" and stopped["ran"] < 200, runs
    assert len(runs) == 2 and last == {"asked": 3, "ran": 3, "ended": "done"}, "no step ran after Stop"
    page.screenshot(path=str(SHOTS / "image-diffusion.png"), full_page=True)
    href = page.locator("#image-files a").first.get_attribute("href")
    assert href and "grid-seed-5" in href


def test_text_tab_streams_and_stop_halts_it(page):
    page.click("#tab-text-button")
    pick(page, "text-model", "me/long-lm")
    page.fill("#text-prompt textarea", "A")
    set_number(page, "text-seed", 1)
    page.get_by_text("Sampling").click()
    set_number(page, "text-max-new", 2048)
    assert value_of(page, "#text-max-new input[type=number]") == "2048", "still set when Generate is clicked"
    page.click("#text-generate")
    lengths = []
    deadline = time.time() + 60
    while len(set(lengths)) < 3 and time.time() < deadline:  # three different, growing lengths: it streams
        n = len(value_of(page, "#text-output textarea"))
        if n and (not lengths or n > lengths[-1]):
            lengths.append(n)
        time.sleep(0.05)
    assert len(set(lengths)) >= 3 and lengths == sorted(lengths), f"the output grows while it runs: {lengths}"
    page.click("#text-stop")
    from playwright.sync_api import expect

    expect(page.locator("#text-notice")).to_contain_text("Stopped", timeout=TIMEOUT_MS)
    time.sleep(1.0)
    halted = len(value_of(page, "#text-output textarea"))
    time.sleep(1.0)
    assert len(value_of(page, "#text-output textarea")) == halted, "nothing arrives after Stop"
    assert halted < 2048, "stopped before the asked length"
    page.screenshot(path=str(SHOTS / "text.png"), full_page=True)


def test_translation_tab_translates_line_by_line(page):
    page.click("#tab-translation-button")
    pick(page, "translation-model", "aigc-hub/translator-en-zh")
    page.fill("#translation-input textarea", "Hello.\n\nThank you very much.\nWhere is the station?")
    set_number(page, "translation-beams", 4)
    page.click("#translation-run")
    page.wait_for_function("document.querySelector('#translation-output textarea').value.split('\\n').length === 4")
    lines = value_of(page, "#translation-output textarea").split("\n")
    assert lines[0] and not lines[1] and lines[2] and lines[3], lines
    assert all(any("\u4e00" <= c <= "\u9fff" for c in line) for line in (lines[0], lines[2], lines[3])), lines
    page.click("#translation-swap")  # languages swap and the translation becomes the input
    # The lists show names with codes ("Chinese (zh)"); the values are the codes.
    page.wait_for_function("document.querySelector('#translation-src input').value === 'Chinese (zh)'")
    assert page.locator("#translation-tgt input").input_value() == "English (en)"
    assert value_of(page, "#translation-input textarea").split("\n") == lines
    page.screenshot(path=str(SHOTS / "translation.png"), full_page=True)


def test_models_tab_loads_and_unloads(page):
    page.click("#tab-models-button")
    pick(page, "models-ref", "me/long-lm")
    page.click("#models-load")
    page.wait_for_function("document.querySelector('#models-status').innerText.includes('Loaded me/long-lm')")
    assert "on cpu (float32" in page.locator("#models-status").inner_text()
    assert "me/long-lm" in page.locator("#models-table").inner_text()
    page.screenshot(path=str(SHOTS / "models.png"), full_page=True)
    page.click("#models-unload")
    page.wait_for_function("document.querySelector('#models-status').innerText.includes('Unloaded me/long-lm')")


def test_a_refusal_leaves_the_rest_of_the_tab_as_it_was(page):
    """A refused Add (an HF id not cached, offline) and a Stop with no job: the message shows, and the tables, lists
    and curves keep what they showed (a raised error put an "Error" badge on every output of the event)."""
    from playwright.sync_api import expect

    page.click("#tab-models-button")
    expect(page.locator("#models-table")).to_contain_text("me/long-lm")
    page.locator("#models-add-ref textarea, #models-add-ref input").first.fill("nobody/not-cached")
    page.click("#models-add")
    expect(page.locator("#models-status")).to_contain_text("Refused:")
    expect(page.locator(".toast-body").first).to_contain_text("nobody/not-cached")
    expect(page.locator("#models-table")).to_contain_text("me/long-lm")
    for part in ("models-table", "models-devices", "models-ref"):  # the badge reads "Error"
        expect(page.locator(f"#{part}")).not_to_contain_text("Error")
    page.click("#tab-train-button")
    page.click("#train-stop")
    expect(page.locator(".toast-body", has_text="job").first).to_be_visible()
    for part in ("train-jobs", "train-curve", "train-status", "train-log"):
        expect(page.locator(f"#{part}")).not_to_contain_text("Error")
    page.screenshot(path=str(SHOTS / "refusal.png"), full_page=True)


def test_image_tab_text_to_image_prompt_controls(page, tmp_path):
    """A Stable Diffusion-family pipeline shows prompt, negative prompt, guidance and size (and no label); the
    images come at the asked size, with the prompt in their PNG parameters."""
    from playwright.sync_api import expect

    from tiny_hub_models import make_tiny_sd

    hub.push(make_tiny_sd(tmp_path / "sd"), "me/tiny-sd")
    page.click("#image-refresh")
    expect(page.locator("#image-prompt-group")).to_be_hidden()  # the GAN starter takes no prompt
    pick(page, "image-model", "me/tiny-sd")
    expect(page.locator("#image-prompt-group")).to_be_visible()
    expect(page.locator("#image-label")).to_be_hidden()
    expect(page.locator("#image-width input[type=number]")).to_have_value("64")  # the model's own size
    page.fill("#image-prompt textarea", "a cat")
    page.fill("#image-negative-prompt textarea", "a dog")
    set_number(page, "image-width", 96)
    generate_images(page, steps=3, count=2, seed=9)
    page.screenshot(path=str(SHOTS / "image-text-to-image.png"), full_page=True)
    href = page.locator("#image-files a").first.get_attribute("href")
    with httpx.Client() as client:
        png = Image.open(io.BytesIO(client.get(href if href.startswith("http") else page.url + href).content))
    text = png.text["parameters"]  # the grid's: two 96×64 images side by side
    assert png.size[1] == 64 + 4 and text.startswith("a cat\nNegative prompt: a dog\nSteps: 3") and "96x64" in text


def test_image_tab_inpaints_strokes_drawn_on_a_result(page):
    """A GAN says it cannot edit; with the diffusion starter a result becomes the input, a stroke drawn with the
    mouse becomes the mask, and Edit inpaints it (the PNG names the mask); the clicked image's seed is the one
    "more like this" varies."""
    from playwright.sync_api import expect

    expect(page.locator("#image-cannot-edit")).to_be_visible()  # the GAN starter
    expect(page.locator("#image-edit-group")).to_be_hidden()
    expect(page.locator("#image-class-guidance")).to_be_hidden()
    pick(page, "image-model", "aigc-hub/ddpm-mnist")
    expect(page.locator("#image-edit-group")).to_be_visible()
    expect(page.locator("#image-cannot-edit")).to_be_hidden()
    expect(page.locator("#image-class-guidance")).to_be_visible()  # trained with an empty label: it can guide
    expect(page.locator("#image-class-guidance input[type=number]")).to_have_value("1")  # its default
    generate_images(page, steps=4, count=2, seed=7)
    page.locator("#image-gallery .grid-wrap img").nth(1).click()
    expect(page.locator("#image-vary-seed input")).to_have_value("8")  # image 1 of seed 7
    page.click("#image-use-result")
    page.locator("#image-edit-group").get_by_text("Edit a picture").first.click()  # open the accordion
    canvas = page.locator("#image-editor canvas").first
    canvas.wait_for(state="visible")
    page.locator("#image-editor button[aria-label=Brush]").click()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.44, box["y"] + box["height"] * 0.8)  # on the picture (centred)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.56, box["y"] + box["height"] * 0.8, steps=24)
    page.mouse.up()
    set_number(page, "image-strength", 1)

    def edited(seed: int) -> str:
        """Edit with `seed`; the parameters of the PNG it returns."""
        set_number(page, "image-seed", seed)
        page.click("#image-edit")
        page.wait_for_function(f"document.querySelector('#image-used-seed input')?.value === '{seed}'")
        src = page.locator("#image-gallery .grid-wrap img").first.get_attribute("src")
        with httpx.Client() as client:
            png = Image.open(io.BytesIO(client.get(src if src.startswith("http") else page.url + src).content))
        return png.text["parameters"]

    # The editor hands its stroke layer over some time after the mouse is released (on a busy 2-core machine, a
    # click straight after once went without it): edit until the picture names its mask, with a new seed each time.
    text, seed, deadline = edited(11), 11, time.time() + TIMEOUT_MS / 1000
    while "Mask: " not in text and time.time() < deadline:
        seed += 1
        text = edited(seed)
    page.screenshot(path=str(SHOTS / "image-inpainting.png"), full_page=True)
    assert "Init image: " in text and "Denoising strength: 1, Mask: " in text and f"Seed: {seed}" in text


def test_text_tab_chat_view_streams_regenerates_and_clears(page, tmp_path):
    """A model whose tokenizer has a chat template gets the chat view: the answer streams into the history,
    Regenerate replaces the last answer, Clear empties the history (also while an answer is streaming)."""
    from playwright.sync_api import expect

    from tiny_hub_models import make_chat_llama

    hub.push(make_chat_llama(tmp_path / "chat"), "me/chat-llama")
    page.click("#tab-text-button")
    page.click("#text-refresh")
    expect(page.locator("#chat-view")).to_be_hidden()
    pick(page, "text-model", "me/chat-llama")
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#text-view")).to_be_hidden()
    set_number(page, "text-seed", 3)
    page.fill("#chat-message textarea", "Hello there")
    page.click("#chat-send")
    page.wait_for_function("document.querySelector('#text-used-seed input')?.value === '3'")
    user, bot = page.locator("#chat-history [data-testid=user]"), page.locator("#chat-history [data-testid=bot]")
    expect(user).to_have_count(1, timeout=TIMEOUT_MS)
    expect(user.first).to_contain_text("Hello there")
    expect(bot).to_have_count(1, timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#chat-history [data-testid=bot]').innerText.trim().length > 0")
    page.get_by_text("Sampling").click()
    set_number(page, "text-max-new", 2048)  # long enough to be still streaming when Clear is pressed
    set_number(page, "text-seed", 4)
    page.click("#chat-regenerate")
    page.wait_for_function("document.querySelector('#text-used-seed input')?.value === '4'")  # it answered again
    page.wait_for_function("document.querySelector('#chat-history [data-testid=bot]')?.innerText.trim().length > 0")
    expect(user).to_have_count(1)  # the last answer was replaced, not added to
    expect(bot).to_have_count(1)
    page.screenshot(path=str(SHOTS / "text-chat.png"), full_page=True)
    page.click("#chat-clear")
    expect(user).to_have_count(0, timeout=TIMEOUT_MS)
    expect(bot).to_have_count(0)


def test_train_tab_trains_a_gan_from_an_uploaded_folder_and_the_image_tab_uses_it(page, tmp_path):
    """Upload a small image folder, train a tiny GAN to the end from the tab while the curve grows, then generate with
    the model it published, in the Image tab, without a restart."""
    import re
    import zipfile

    import numpy as np
    from playwright.sync_api import expect

    folder = tmp_path / "shapes.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(folder, "w") as zf:
        for label in ("dark", "light"):
            for i in range(24):
                pixels = rng.integers(0, 128, (32, 32), dtype=np.uint8) + (127 if label == "light" else 0)
                out = io.BytesIO()
                Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
                zf.writestr(f"shapes/{label}/{i}.png", out.getvalue())
    page.click("#tab-train-button")
    expect(page.locator("#train-steps input[type=number]")).to_have_value("3000")  # the GAN's: 1,000 drew blobs
    page.locator("#train-upload input[type=file]").set_input_files(str(folder))
    pick(page, "train-preset", "tiny")
    set_number(page, "train-steps", 200)  # long enough to be watched: 40 tiny steps could end within one tick
    page.locator("#train-hub-id textarea, #train-hub-id input").first.fill("me/browser-gan")
    expect(page.locator("#train-estimate")).to_contain_text("s a step: 2 CPU cores, the project's measurement")
    page.click("#train-start")
    points = []
    deadline = time.time() + 600
    while "finished" not in (status := page.locator("#train-status").inner_text()):
        assert "failed" not in status and time.time() < deadline, status
        found = re.search(r"(\d+) points on the curve", status)
        if found and (not points or int(found[1]) > points[-1]):
            points.append(int(found[1]))
        time.sleep(0.2)
    assert len([p for p in points if p > 0]) >= 2, f"the curve grew only through {points}"
    expect(page.locator("#train-status")).to_contain_text("48 images is little")  # the script's notice
    expect(page.locator("#train-sample img")).to_be_visible()
    expect(page.locator("#train-curve path[aria-roledescription='line mark']").first).to_be_visible()  # drawn
    page.screenshot(path=str(SHOTS / "train.png"), full_page=True)
    set_number(page, "train-steps", 400)  # the next estimate: this server's own speed
    expect(page.locator("#train-estimate")).to_contain_text("ran at that speed on this server")
    page.click("#tab-image-button")
    pick(page, "image-model", "me/browser-gan")  # listed on entering the tab
    set_number(page, "image-count", 4)
    set_number(page, "image-seed", 7)
    page.click("#image-generate")
    page.wait_for_function("document.querySelector('#image-used-seed input')?.value === '7'")
    expect(page.locator("#image-gallery .grid-wrap img")).to_have_count(4)


def test_train_tab_starts_from_a_listed_model_with_lora_and_previews_the_rows(page, tmp_path):
    """Start from a model the hub lists: the preset gives way to the LoRA rank, the preview shows the rows as the
    model reads them (what it learns in bold), and the adapter the job publishes is listed in the Text tab."""
    import json
    import re

    from playwright.sync_api import expect

    rows = tmp_path / "answers.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"question {c}: what is it?\n", "completion": "it is a cat."}) + "\n"
                            for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"))  # the base's characters only
    page.click("#tab-train-button")
    page.locator("#train-recipe label", has_text="Text LM").click()
    expect(page.locator("#train-steps input[type=number]")).to_have_value("1000")  # each recipe's own start
    expect(page.locator("#train-preset")).to_be_visible()
    expect(page.locator("#train-lora-rank")).to_be_hidden()
    pick(page, "train-base", "me/long-lm")
    expect(page.locator("#train-preset")).to_be_hidden()
    expect(page.locator("#train-lora-rank")).to_be_visible()
    page.locator("#train-upload input[type=file]").set_input_files(str(rows))
    expect(page.locator("#train-preview strong").first).to_have_text("it is a cat.")  # the completion is learned
    expect(page.locator("#train-preview")).to_contain_text("question a: what is it?")  # the prompt is context
    set_number(page, "train-lora-rank", 4)
    set_number(page, "train-steps", 6)
    page.locator("#train-hub-id textarea, #train-hub-id input").first.fill("me/browser-lora")
    page.click("#train-start")
    expect(page.locator("#train-status")).to_contain_text(re.compile("finished|failed"), timeout=300_000)
    expect(page.locator("#train-status")).to_contain_text("finished")
    page.click("#tab-text-button")
    pick(page, "text-model", "me/browser-lora")  # listed on entering the tab, served on its base
