"""Adding a model by HF id or folder: resolved offline from a Hugging Face cache laid out as huggingface_hub leaves
it, checked before it is remembered, listed beside the hub, remembered across restarts, served by the CLI and the
Models tab's API; refused with one line when it cannot be served."""

from __future__ import annotations

import json
import sys

import pytest
from gradio_client import Client

from aigc_hub import added_models, hub
from aigc_hub.errors import HubError, ModelLoadError
from conftest import run


def test_an_hf_id_resolves_from_the_cache_offline(tmp_hub, hf_cache, short_lm):
    snapshot = hf_cache("someone/short-lm", short_lm, commit="c" * 40)
    assert hub.resolve("someone/short-lm") == snapshot
    assert hub.resolve(f"someone/short-lm@{'c' * 40}") == snapshot
    assert (snapshot / "model.safetensors").is_symlink()  # the real cache layout: links into blobs/
    with pytest.raises(HubError, match="offline"):
        hub.resolve("someone/absent")


@pytest.mark.slow  # the CLI in new processes: a restart
def test_an_added_hf_id_is_listed_remembered_and_served(tmp_hub, hf_cache, short_lm, tmp_path):
    hf_cache("someone/short-lm", short_lm)
    entry = added_models.add("someone/short-lm")
    assert (entry.ref, entry.source, entry.task, entry.family) == ("someone/short-lm", "hf", "text", "causal-lm")
    assert added_models.add(" someone/short-lm ").ref == "someone/short-lm"  # twice: remembered once
    assert added_models.added_refs() == ["someone/short-lm"]
    env = {"AIGC_HUB_HOME": str(tmp_hub), "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    listed = run([sys.executable, "-m", "aigc_hub", "list", "--json"], env=env)  # a new process: a restart
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["ref"] == "someone/short-lm")
    assert row["source"] == "hf" and row["task"] == "text"
    text = run([sys.executable, "-m", "aigc_hub", "generate", "text", "--model", "someone/short-lm", "--prompt",
                "ROMEO:", "--max-new-tokens", "50", "--seed", "1"], env=env)
    assert text.returncode == 0 and len(text.stdout) > 40, text.stderr
    assert "window slides" in text.stderr  # 32-token context, 50 tokens asked
    assert added_models.remove("someone/short-lm") and not added_models.added_refs()
    assert not added_models.remove("someone/short-lm")


def test_a_folder_is_remembered_by_its_absolute_path(tmp_hub, short_lm, monkeypatch):
    monkeypatch.chdir(short_lm.parent)
    entry = added_models.add(f"./{short_lm.name}")
    assert entry.ref == str(short_lm.resolve()) and entry.source == "folder"
    assert str(short_lm.resolve()) in [e.ref for e in added_models.listed()]
    assert added_models.remove(f"./{short_lm.name}")


@pytest.mark.slow  # a CLI process
def test_models_that_cannot_be_served_are_refused_and_nothing_is_remembered(tmp_hub, hf_cache, short_lm, tmp_path):
    import shutil

    import torch

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    torch.save({"w": torch.zeros(1)}, pickled / "pytorch_model.bin")
    hf_cache("someone/pickled", pickled)
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "resnet", "architectures": ["ResNetModel"]}))
    custom = tmp_path / "custom"
    shutil.copytree(short_lm, custom)  # real weights, but a type only the repository's own code knows
    config = json.loads((custom / "config.json").read_text())
    config.update(model_type="my_gpt", architectures=["MyGPTForCausalLM"],
                  auto_map={"AutoModelForCausalLM": "modeling_my_gpt.MyGPTForCausalLM"})
    (custom / "config.json").write_text(json.dumps(config))
    hf_cache("someone/custom-code", custom)
    for ref, error, words in [("someone/pickled", ModelLoadError, "pickle"), (str(unknown), ModelLoadError, "resnet"),
                              ("someone/custom-code", ModelLoadError, "own code .* never runs remote code"),
                              ("someone/absent", HubError, "offline"), ("../x", HubError, "not a model folder"),
                              ("", HubError, "no model given"), ("a/b/c", HubError, "owner/name")]:
        with pytest.raises(error, match=words):
            added_models.add(ref)
    assert added_models.added_refs() == []
    failed = run([sys.executable, "-m", "aigc_hub", "add", "someone/absent"],
                 env={"AIGC_HUB_HOME": str(tmp_hub), "HF_HUB_OFFLINE": "1"})
    assert failed.returncode == 2 and "offline" in failed.stderr and "Traceback" not in failed.stderr


def test_models_tab_adds_a_model_that_the_text_tab_then_serves(launched, hf_cache, short_lm, tiny_gan):
    hf_cache("someone/short-lm", short_lm)
    hub.push(tiny_gan, "me/tiny-gan")
    url, _ = launched(image_model="me/tiny-gan", preload=False)
    client = Client(url, verbose=False)
    status, table, _, _ = client.predict("someone/short-lm", api_name="/add_model")
    assert "Added someone/short-lm: text (causal-lm)" in status
    assert any(row[0] == "someone/short-lm" and row[1] == "hf" for row in table["data"])
    text, seed, _ = client.predict("someone/short-lm", "ROMEO:", 20, 0.8, 50, 0.95, 1.0, "", 4,
                                   api_name="/generate_text")
    assert seed == 4 and len(text) > 10  # the continuation (a 20-token, char-level answer)
    with pytest.raises(Exception, match="offline"):
        client.predict("someone/absent", api_name="/add_model")
    assert added_models.added_refs() == ["someone/short-lm"]  # remembered for the next start
