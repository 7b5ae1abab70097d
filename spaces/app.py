"""AIGC Hub as a Hugging Face Space: the same `build_demo` composition as the local `app.py`.

`python -m aigc_hub space build` copies this file into a Space folder beside the vendored `aigc_hub` package, the
models that live only on the builder's machine (`models/`), and `aigc-hub.yaml` (tabs and models to serve).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the vendored aigc_hub package, not an installed one
os.environ["AIGC_HUB_HOME"] = str(HERE / "models")  # the models copied into this Space

import aigc_hub  # noqa: E402

aigc_hub.serving_threads()  # before torch is imported
from aigc_hub.config import AppConfig  # noqa: E402
from aigc_hub.ui import build_demo, launch  # noqa: E402

config = AppConfig.load(HERE / "aigc-hub.yaml")
demo = build_demo(config)

if __name__ == "__main__":
    launch(demo, config)  # with the /v1 routes; Spaces sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which config reads
    demo.block_thread()
