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
from aigc_hub.cli import main  # noqa: E402

if __name__ == "__main__":  # the local app's `serve`: its checks before loading, its one-line errors
    # Spaces sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which the config reads.
    main(["serve", "--config", str(HERE / "aigc-hub.yaml")])
