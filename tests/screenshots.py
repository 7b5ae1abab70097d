"""The README's screenshots of the Train tab, taken as the browser test drives it (headless Chromium): a GAN job on
an uploaded folder of two classes of shapes, mid-run, then 16 images from the model it published, in the Image tab.

    python tests/screenshots.py     # rewrites aigc_hub/ui/screenshots/*.png (about a minute on 2 CPU cores)
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
OUT = HERE.parent / "aigc_hub" / "ui" / "screenshots"
STEPS = 600


def shapes_zip(path: Path) -> Path:
    """64 bright discs and 64 bright squares on dark noise, 32 px, in class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    with zipfile.ZipFile(path, "w") as zf:
        for label in ("discs", "squares"):
            for i in range(64):
                image = rng.integers(0, 60, (32, 32)).astype(np.uint8)
                cx, cy = rng.integers(10, 22, 2)
                r = int(rng.integers(5, 9))
                inside = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) if label == "discs" else (
                    (abs(xx - cx) < r) & (abs(yy - cy) < r))
                image[inside] = 230
                out = io.BytesIO()
                Image.fromarray(image).save(out, format="PNG")
                zf.writestr(f"shapes/{label}/{i}.png", out.getvalue())
    return path


def main() -> None:
    home = Path(tempfile.mkdtemp())
    os.environ["AIGC_HUB_HOME"] = str(home / "hub")  # a fresh hub and job list, not the user's
    from playwright.sync_api import sync_playwright

    from aigc_hub.config import AppConfig
    from aigc_hub.ui import build_demo, launch
    from conftest import free_port
    from test_browser import CHROMIUM, FLAGS, pick, set_number

    config = AppConfig.of(port=free_port(), preload=False)
    demo = build_demo(config)
    launch(demo, config, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.set_default_timeout(120_000)
            page.goto(demo.local_url)
            page.click("#tab-train-button")
            page.locator("#train-upload input[type=file]").set_input_files(str(shapes_zip(home / "shapes.zip")))
            pick(page, "train-preset", "small")
            set_number(page, "train-steps", STEPS)
            page.locator("#train-hub-id textarea, #train-hub-id input").first.fill("me/shapes-gan")
            page.click("#train-start")
            while not (re.search(rf"step (\d+) / {STEPS}", page.locator("#train-status").inner_text()) and
                       int(re.search(r"step (\d+)", page.locator("#train-status").inner_text())[1]) >= STEPS * 0.4):
                time.sleep(0.5)
            page.wait_for_selector("#train-sample img")
            time.sleep(1.5)  # the plot's last transition
            page.screenshot(path=str(OUT / "train-tab.png"))
            while "finished" not in page.locator("#train-status").inner_text():
                time.sleep(0.5)
            page.click("#tab-image-button")
            pick(page, "image-model", "me/shapes-gan")
            set_number(page, "image-count", 16)
            set_number(page, "image-seed", 3)
            page.click("#image-generate")
            page.wait_for_function("document.querySelector('#image-used-seed input')?.value === '3'")
            time.sleep(1.5)
            page.screenshot(path=str(OUT / "image-tab-published.png"))
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
