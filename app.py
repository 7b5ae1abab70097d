"""AIGC Hub app: `python app.py` serves the Gradio app on http://127.0.0.1:7860 (options: --help)."""

import aigc_hub

aigc_hub.serving_threads()  # before torch is imported

from aigc_hub.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["serve", *__import__("sys").argv[1:]])
