"""AIGC Hub: from your data to a shareable generative demo on the Hugging Face stack."""

import os

__version__ = "0.1.0"


def serving_threads() -> None:
    """Make torch's CPU thread team wait for work asleep rather than spinning, unless the user chose otherwise; call
    before torch is imported (its OpenMP reads the setting once). A server runs model work beside Gradio's event loop
    and its requests' threads: a spinning team holds both cores while the event loop waits for one. 32 users × 3
    requests on 2 cores: 3.8 → 7.6 requests/s and half the server's CPU time; a lone decode step costs about 40 %
    more without the spin (10 → 14 ms), which the CLI and training keep."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.environ["AIGC_HUB_SET_OMP"] = "1"  # training jobs started by the server drop it (jobs/manager.py)
