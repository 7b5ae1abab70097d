"""Hub: references, validation, atomic push, listing from cards."""

from __future__ import annotations

import shutil

import pytest

from aigc_hub import hub
from aigc_hub.hub import HubError


@pytest.mark.parametrize("bad", ["../x", "x/..", "a/../b", "/etc/passwd", "~/x", "a//b", "a/b/c", "", "  ", "a",
                                 "-a/b", "a/b.git", "a/b--c", "../../etc"])
def test_invalid_repo_ids_are_refused(bad):
    with pytest.raises(HubError):
        hub.validate_repo_id(bad)


def test_valid_repo_ids():
    assert hub.validate_repo_id("aigc-hub/dcgan-mnist") == "aigc-hub/dcgan-mnist"
    assert hub.parse_ref("me/model@v1.0") == ("me/model", "v1.0")


def test_push_resolve_list(tmp_hub, tiny_gan):
    (tiny_gan / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (tiny_gan / "checkpoints" / "checkpoint-1" / "optimizer.bin").write_bytes(b"x")
    (tiny_gan / "logs").mkdir()
    (tiny_gan / "stray.bin").write_bytes(b"pickle")
    where = hub.push(tiny_gan, "me/tiny")
    assert where == str(tmp_hub / "me" / "tiny")
    pushed = {p.name for p in (tmp_hub / "me" / "tiny").iterdir()}
    assert pushed == {"config.json", "model.safetensors", "README.md"}, "checkpoints, logs, pickles stay behind"
    assert hub.resolve("me/tiny") == tmp_hub / "me" / "tiny"
    [entry] = [e for e in hub.list_models() if e.ref == "me/tiny"]
    assert entry.source == "local"
    assert entry.card.pipeline_tag == "unconditional-image-generation"
    assert entry.card.datasets == ["synthetic"]
    assert entry.card.figures[0].value == pytest.approx(12.5)


def test_resolve_order_and_errors(tmp_hub, tiny_gan, monkeypatch, tmp_path):
    assert hub.resolve(str(tiny_gan)) == tiny_gan  # a folder path
    starters = tmp_path / "starters"
    shutil.copytree(tiny_gan, starters / "aigc-hub" / "s")
    monkeypatch.setattr(hub, "STARTERS_ROOT", starters)
    assert hub.resolve("aigc-hub/s") == starters / "aigc-hub" / "s"
    hub.push(tiny_gan, "aigc-hub/s")  # the local hub wins over the read-only starters
    assert hub.resolve("aigc-hub/s") == tmp_hub / "aigc-hub" / "s"
    with pytest.raises(HubError, match="keeps no revisions"):
        hub.resolve("aigc-hub/s@v2")
    with pytest.raises(HubError, match="not in the local hub"):
        hub.resolve("nobody/nothing")  # offline: a clear error, no hang
    with pytest.raises(HubError, match="no config.json"):
        hub.resolve(str(tmp_path))
    with pytest.raises(HubError):
        hub.resolve("../x")


def test_interrupted_push_leaves_previous_version(tmp_hub, tiny_gan, tmp_path, monkeypatch):
    hub.push(tiny_gan, "me/tiny")
    before = (tmp_hub / "me" / "tiny" / "model.safetensors").read_bytes()
    newer = tmp_path / "newer"
    shutil.copytree(tiny_gan, newer)
    (newer / "model.safetensors").write_bytes(b"new weights" * 1000)

    def dies_half_way(path, *a, **k):  # the copy has started; the process dies before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(hub, "_fsync_tree", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        hub.push(newer, "me/tiny")
    assert (tmp_hub / "me" / "tiny" / "model.safetensors").read_bytes() == before
    assert [p.name for p in (tmp_hub / "me").iterdir()] == ["tiny"], "no temporary folder left behind"
    assert [e.ref for e in hub.list_models() if e.source == "local"] == ["me/tiny"]
    # A first push that dies leaves no entry at all, so nobody can load half a model.
    with pytest.raises(KeyboardInterrupt):
        hub.push(newer, "me/other")
    assert not (tmp_hub / "me" / "other").exists()


def test_push_refuses_folders_without_safetensors(tmp_hub, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(HubError, match="safetensors"):
        hub.push(folder, "me/m")
    with pytest.raises(HubError, match="config.json"):
        hub.push(tmp_path / "missing", "me/m")


def test_hf_push_without_token_or_network_fails_clearly(tiny_gan, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored token
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HubError, match="needs a token"):
        hub.push(tiny_gan, "me/tiny", hf=True)
    monkeypatch.setenv("HF_TOKEN", "hf_fake")  # a token, but this machine has no route to the Hub
    with pytest.raises(HubError, match="push to the Hugging Face Hub failed"):
        hub.push(tiny_gan, "me/tiny", hf=True)


def test_pushed_files_are_readable_as_the_umask_allows(tmp_hub, tiny_gan):
    """Files written through mkstemp (0600) are published with the modes new files get, not kept private."""
    import os
    import stat

    for f in tiny_gan.iterdir():
        f.chmod(0o600)
    hub.push(tiny_gan, "me/modes")
    umask = os.umask(0o022)
    os.umask(umask)
    entry = tmp_hub / "me" / "modes"
    assert stat.S_IMODE(entry.stat().st_mode) == 0o777 & ~umask
    for f in entry.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f.name


def test_the_listing_is_cached_until_the_hub_changes(tmp_hub, tiny_gan, monkeypatch):
    import os

    hub.push(tiny_gan, "me/one")
    reads = []
    original = hub.read_card
    monkeypatch.setattr(hub, "read_card", lambda path: reads.append(path.name) or original(path))
    hub.invalidate()
    first = [e.ref for e in hub.list_models() if e.source == "local"]
    assert first == ["me/one"] and "one" in reads
    reads.clear()
    assert [e.ref for e in hub.list_models() if e.source == "local"] == first and reads == [], "no card re-read"
    (tmp_hub / "me" / "one" / "README.md").write_text((tiny_gan / "README.md").read_text() + "\nedited\n")
    mtime = (tmp_hub / "me" / "one" / "README.md").stat().st_mtime_ns + 10**9  # a clock tick later, surely
    os.utime(tmp_hub / "me" / "one" / "README.md", ns=(mtime, mtime))
    hub.list_models()
    assert "one" in reads, "an edited card is read again"
    reads.clear()
    hub.push(tiny_gan, "me/two")  # a push refreshes it
    assert [e.ref for e in hub.list_models() if e.source == "local"] == ["me/one", "me/two"]
