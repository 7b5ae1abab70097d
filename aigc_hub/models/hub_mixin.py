"""`SafeHubMixin`: huggingface_hub's `PyTorchModelHubMixin`, quiet and safetensors-only.

The stock mixin prints "Loading weights from local directory" on stdout for every local load (it lands in the CLI's
output and the server log) and, for a Hub repo without `model.safetensors`, falls back to unpickling
`pytorch_model.bin`. This one loads local folders silently and refuses pickles everywhere.
"""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download


class SafeHubMixin(PyTorchModelHubMixin):
    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: Any, force_download: bool,
                         local_files_only: bool, token: Any, map_location: str = "cpu", strict: bool = False,
                         **model_kwargs: Any) -> Any:
        if os.path.isdir(model_id):
            model_file = os.path.join(model_id, constants.SAFETENSORS_SINGLE_FILE)
        else:
            model_file = hf_hub_download(repo_id=model_id, filename=constants.SAFETENSORS_SINGLE_FILE,
                                         revision=revision, cache_dir=cache_dir, force_download=force_download,
                                         token=token, local_files_only=local_files_only)
        return cls._load_as_safetensor(cls(**model_kwargs), model_file, map_location, strict)
