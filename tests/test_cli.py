"""`python -m aigc_hub`: generate / list / push, and clear errors for bad input (exit 2, no traceback)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from aigc_hub.imaging import read_parameters
from conftest import run

pytestmark = pytest.mark.slow  # every test here runs the CLI or an app in a subprocess


def cli(*args, hub_home=None):
    env = {"AIGC_HUB_HOME": str(hub_home)} if hub_home else {}
    return run([sys.executable, "-m", "aigc_hub", *map(str, args)], env={"HF_HUB_OFFLINE": "1", **env})


def test_generate_grid_npz_and_folder(tiny_gan, tmp_path):
    grid = tmp_path / "grid.png"
    proc = cli("generate", "image", "--model", tiny_gan, "--num", 20, "--seed", 5, "--out", grid, "--nrow", 10)
    assert proc.returncode == 0, proc.stderr
    assert "seed 5" in proc.stdout
    assert Image.open(grid).size == (10 * 34 + 2, 2 * 34 + 2)
    assert "Seed: 5" in read_parameters(str(grid)) and "Count: 20" in read_parameters(str(grid))
    assert "Label:" not in read_parameters(str(grid)), "a grid of mixed classes names no single label"
    one = tmp_path / "one.png"
    assert cli("generate", "image", "--model", tiny_gan, "--num", 1, "--seed", 5, "--out", one).returncode == 0
    assert Image.open(one).size == (32, 32) and "Label: 0" in read_parameters(str(one)), "one image, not a grid"

    npz = tmp_path / "s.npz"
    assert cli("generate", "image", "--model", tiny_gan, "--num", 300, "--seed", 0, "--out", npz).returncode == 0
    with np.load(npz) as data:
        assert data["images"].shape == (300, 32, 32, 1) and data["images"].dtype == np.uint8
        assert list(data["seeds"][:3]) == [0, 1, 2] and list(data["labels"][:12]) == [*range(10), 0, 1]

    folder = tmp_path / "pngs"
    assert cli("generate", "image", "--model", tiny_gan, "--num", 3, "--seed", 7, "--label", 2,
               "--out", folder).returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == ["seed-7.png", "seed-8.png", "seed-9.png"]
    with np.load(npz) as data:  # the same seed gives the same pixels whatever the output format
        assert np.array_equal(np.asarray(Image.open(folder / "seed-7.png")), np.asarray(
            Image.fromarray(_single(tiny_gan, tmp_path, 7, 2)[..., 0])))


def _single(model, tmp_path, seed, label):
    out = tmp_path / f"one-{seed}.npz"
    assert cli("generate", "image", "--model", model, "--num", 1, "--seed", seed, "--label", label,
               "--out", out).returncode == 0
    with np.load(out) as data:
        return data["images"][0]


def test_push_and_list(tiny_gan, tmp_path):
    home = tmp_path / "hub"
    proc = cli("push", tiny_gan, "--repo-id", "me/tiny", hub_home=home)
    assert proc.returncode == 0, proc.stderr
    proc = cli("list", "--json", hub_home=home)
    entries = {e["ref"]: e for e in json.loads(proc.stdout)}
    assert entries["me/tiny"]["source"] == "local"
    assert entries["me/tiny"]["figures"] == {"FD (classifier features)": 12.5}
    assert "me/tiny" in cli("list", hub_home=home).stdout


def _broken(tiny_gan, tmp_path):
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_gan, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:100])
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_gan, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    no_config = tmp_path / "noconfig"
    shutil.copytree(tiny_gan, no_config)
    (no_config / "config.json").unlink()
    bad_config = tmp_path / "badconfig"
    shutil.copytree(tiny_gan, bad_config)
    (bad_config / "config.json").write_text("[1, 2")
    return truncated, pickled, no_config, bad_config


BAD = [
    ("unknown model", ["--model", "nobody/nothing"], "not in the local hub"),
    ("traversal", ["--model", "../../etc"], "not a model folder"),
    ("bad id", ["--model", "a/b/c"], "invalid model id"),
    ("count 0", ["--num", "0"], "between 1 and"),
    ("count 10^6", ["--num", "1000000"], "between 1 and"),
    ("negative seed", ["--seed", "-2"], "seed must be"),
    ("huge seed", ["--seed", str(2**40)], "seed must be"),
    ("label out of range", ["--label", "10"], "label must be between 0 and 9"),
    ("bad output", ["--out", "x.jpg"], "--out must end in"),
]


@pytest.mark.parametrize("case, args, message", BAD, ids=[c for c, _, _ in BAD])
def test_bad_generate_input(tiny_gan, tmp_path, case, args, message):
    base = {"--model": str(tiny_gan), "--num": "1", "--seed": "0", "--out": str(tmp_path / "o.png")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    proc = cli("generate", "image", *[x for kv in base.items() for x in kv])
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_broken_checkpoints_in_the_cli(tiny_gan, tmp_path):
    truncated, pickled, no_config, bad_config = _broken(tiny_gan, tmp_path)
    for folder, message in [(truncated, "could not be loaded"), (pickled, "pickle"),
                            (no_config, "no config.json"), (bad_config, "does not parse")]:
        proc = cli("generate", "image", "--model", folder, "--num", 1, "--out", tmp_path / "o.png")
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_bad_push_input(tiny_gan, tmp_path):
    for args, message in [([tiny_gan, "--repo-id", "../x"], "invalid model id"),
                          ([tmp_path / "missing", "--repo-id", "me/x"], "no config.json")]:
        proc = cli("push", *args, hub_home=tmp_path / "hub")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "hub").exists() or not any((tmp_path / "hub").rglob("config.json"))
