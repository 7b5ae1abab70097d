"""AIGC Hub: from your data to a shareable generative demo on the Hugging Face stack."""

__version__ = "0.1.0"
