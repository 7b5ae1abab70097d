"""Placement policy on fake inventories (no GPU needed)."""

import pytest
import torch

from aigc_hub.devices import Device, DeviceError, dtype_for, inventory, place

GiB = 1024**3


def fake(*free_gib: float) -> list[Device]:
    gpus = [Device(f"cuda:{i}", "cuda", 80 * GiB, int(f * GiB), "fake GPU") for i, f in enumerate(free_gib)]
    return gpus + [Device("cpu", "cpu", 64 * GiB, 32 * GiB, "CPU")]


def test_most_free_gpu_that_fits():
    assert place(1 * GiB, devices=fake(10, 30, 20)) == "cuda:1"


def test_falls_back_to_cpu_when_no_gpu_fits():
    assert place(40 * GiB, devices=fake(10, 30)) == "cpu"
    assert place(1 * GiB, devices=fake()) == "cpu"


def test_margin_for_activations():
    assert place(10 * GiB, devices=fake(14, 16)) == "cuda:1"  # 14 < 10 × 1.5 ≤ 16


def test_override():
    assert place(1 * GiB, "cuda:0", devices=fake(1, 30)) == "cuda:0"
    assert place(1 * GiB, "cpu", devices=fake(30)) == "cpu"
    assert place(1 * GiB, "cuda", devices=fake(30)) == "cuda:0"
    with pytest.raises(DeviceError, match="not on this machine"):
        place(1 * GiB, "cuda:3", devices=fake(30))


def test_dtype_on_cpu():
    assert dtype_for("cpu") == torch.float32


def test_dtype_on_a_gpu_follows_its_bf16_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dtype_for("cuda:0") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dtype_for("cuda:0") == torch.float16


def test_real_inventory_has_cpu():
    names = [d.name for d in inventory()]
    assert names[-1] == "cpu"
