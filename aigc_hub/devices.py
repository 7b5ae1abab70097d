"""Device inventory and placement.

Policy: a model goes where it is told (`cuda:1`, `cpu`, ...) when that device exists; otherwise on the GPU with the
most free memory that fits it (weights × a margin for activations), otherwise on the CPU. dtype follows the device:
fp32 on CPU (this class of CPU has no fast bf16: bf16 matmuls run ~100× slower), bf16 on GPUs that support it,
else fp16.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import DeviceError

MARGIN = 1.5  # weights × MARGIN must fit in free memory: activations and the CUDA context need room too


@dataclass(frozen=True)
class Device:
    name: str  # torch device string: "cuda:0", "mps", "cpu"
    kind: str  # "cuda" | "mps" | "cpu"
    total_bytes: int
    free_bytes: int
    label: str = ""  # e.g. "NVIDIA H200"

    def describe(self) -> str:
        gib = 1024**3
        return f"{self.name} ({self.label or self.kind}, {self.free_bytes / gib:.1f}/{self.total_bytes / gib:.1f} GiB free)"


def inventory() -> list[Device]:
    """The devices of this machine, GPUs first, with their free memory now."""
    found: list[Device] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            found.append(Device(f"cuda:{i}", "cuda", total, free, torch.cuda.get_device_name(i)))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        total = torch.mps.recommended_max_memory()
        found.append(Device("mps", "mps", total, total - torch.mps.driver_allocated_memory(), "Apple GPU"))
    import psutil

    mem = psutil.virtual_memory()
    found.append(Device("cpu", "cpu", mem.total, mem.available, "CPU"))
    return found


def place(model_bytes: int, override: str | None = None, devices: list[Device] | None = None) -> str:
    """The device a model of `model_bytes` should load on (see the module docstring for the policy)."""
    devices = inventory() if devices is None else devices
    names = {d.name for d in devices}
    if override and override != "auto":
        name = "cuda:0" if override == "cuda" else override
        if name not in names:
            raise DeviceError(f"device {override!r} is not on this machine; available: {', '.join(sorted(names))}")
        return name
    gpus = [d for d in devices if d.kind in ("cuda", "mps") and d.free_bytes >= model_bytes * MARGIN]
    if gpus:
        return max(gpus, key=lambda d: d.free_bytes).name
    return "cpu"


def dtype_for(device: str) -> torch.dtype:
    """fp32 on CPU; bf16 on CUDA GPUs that support it, else fp16 (MPS: fp16)."""
    if device == "cpu":
        return torch.float32
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the OS (True when applied).

    A CPU training step allocates and frees the same large activation tensors every step. glibc serves big blocks
    with fresh mmap'd pages and trims the heap top on free, so every step pays for page faults again: measured on
    the 2-core dev machine, 0.2–0.8 s of a 1.7–1.9 s diffusion step, and how much varied with the process's
    allocation history. Without mmap and with a 1 GiB trim threshold the blocks are reused: ~0 faults, ~1.5 s.
    The cost is that a process keeps its peak heap, which a training process reaches every step anyway.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
