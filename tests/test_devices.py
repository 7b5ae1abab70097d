"""Placement policy on fake inventories (no GPU needed), and the CPU allocator setting."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aigc_hub.devices import Device, DeviceError, dtype_for, inventory, place

GiB = 1024**3
REPO = Path(__file__).resolve().parents[1]


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


FAULTS_OF_TRAINING_STEPS = """
import resource, sys
import torch
from aigc_hub.devices import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(64, 64, 3, padding=1),
                          torch.nn.SiLU(), torch.nn.Conv2d(64, 3, 3, padding=1))
x = torch.randn(64, 3, 32, 32)
def step():  # a training step's allocations: activations of 16 MiB each, all freed at its end
    net(x).square().mean().backward()
for _ in range(3):  # the heap grows to the step's peak
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow  # an allocator setting read at process start: new processes
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc allocator setting")
def test_kept_memory_is_reused_without_page_faults():
    def run(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", FAULTS_OF_TRAINING_STEPS, mode], capture_output=True, text=True,
                             check=True, cwd=REPO).stdout.split()
        return out[0], int(out[1])

    default_applied, default_faults = run("default")
    kept_applied, kept_faults = run("keep")
    assert (default_applied, kept_applied) == ("False", "True")
    # By default the activations come back as fresh pages every step (~40k faults a step here); kept, they are
    # reused: 0 faults, or a one-off 32 MiB (8192) now and then on a busy machine.
    assert default_faults > 100_000
    assert kept_faults < default_faults / 10


@pytest.mark.slow  # app.py imported in new processes
@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_app_py_lets_torch_threads_wait_asleep_unless_told_otherwise(given, expected):
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    probe = "import os, app; print(os.environ.get('OMP_WAIT_POLICY'))"  # app.py, as `python app.py` runs it
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO,
                         env=env).stdout.split()
    assert out == [expected]
