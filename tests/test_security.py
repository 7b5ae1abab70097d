"""Issue 26, the parts that need no server: a client never steers the server's secrets (remote entries only from the
operator, redacted errors, no credentials in URLs), its memory (upload checks bounded), or other users' models (a job
never replaces a starter or an existing entry unasked; the queue is bounded). The server-side halves, end to end,
are in test_security_server.py."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from aigc_hub import added_models, hub
from aigc_hub.errors import HubError, ModelLoadError, UserError
from aigc_hub.jobs import JobManager, Limits
from aigc_hub.jobs import uploads
from aigc_hub.jobs.store import Job
from aigc_hub.added_models import add_remote as add
from aigc_hub.remote import KEY, failure_message
from aigc_hub.services import ModelRegistry

SECRET = "sk-do-not-leak-0123456789"


def remote_folder(folder: Path, base_url: str = "http://127.0.0.1:9/v1", env: str = "AIGC_TEST_SECRET") -> Path:
    """A remote entry as a stranger would write it: a config.json naming a server and the server's secret."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({KEY: {"base_url": base_url, "model": "x", "api_key_env": env}}))
    return folder


@pytest.mark.slow  # a CLI process
def test_a_remote_entry_outside_the_local_hub_is_refused_before_any_connection(tmp_hub, tmp_path, monkeypatch,
                                                                              hf_cache):
    """The real client throughout: a refused entry says so before connecting; the operator's entry tries to connect
    (and, with nothing listening on the port, says it cannot be reached)."""
    from conftest import free_port

    monkeypatch.setenv("AIGC_TEST_SECRET", SECRET)
    closed = f"http://127.0.0.1:{free_port()}/v1"
    stranger = remote_folder(tmp_path / "uploaded" / "abc123", closed)
    with pytest.raises(ModelLoadError, match="honoured only in the local hub"):
        ModelRegistry().get(str(stranger))
    snapshot = hf_cache("someone/remote", remote_folder(tmp_path / "from-hf", closed))  # as a download leaves it
    with pytest.raises(ModelLoadError, match="honoured only in the local hub"):
        ModelRegistry().get(str(snapshot))
    add("me/operators", closed, "x", api_key_env="AIGC_TEST_SECRET")  # the operator's CLI
    with pytest.raises(ModelLoadError, match="cannot be reached: the connection failed"):
        ModelRegistry().get("me/operators")  # the one that is honoured: it connects


def test_a_web_client_adds_folders_only_under_the_operators_roots_and_never_a_remote(tmp_hub, tmp_path, tiny_gan):
    import shutil

    allowed = tmp_path / "models"
    shutil.copytree(tiny_gan, allowed / "gan")
    stranger = remote_folder(allowed / "remote")
    with pytest.raises(HubError, match="only under the folders the operator configured"):
        added_models.add(str(tiny_gan), folder_roots=[allowed])
    with pytest.raises(HubError, match="none are"):
        added_models.add(str(allowed / "gan"), folder_roots=[])
    with pytest.raises(HubError, match="only under"):
        added_models.add(str(allowed / ".." / "tiny-gan"), folder_roots=[allowed])  # resolved before it is judged
    assert added_models.add(str(allowed / "gan"), folder_roots=[allowed]).family == "dcgan"
    with pytest.raises(ModelLoadError, match="honoured only in the local hub"):
        added_models.add(str(stranger), folder_roots=[allowed])
    assert added_models.added_refs() == [str((allowed / "gan").resolve())]
    assert added_models.add(str(tiny_gan)).family == "dcgan"  # the operator's CLI: any folder


def test_credentials_in_a_base_url_are_refused(tmp_hub):
    with pytest.raises(UserError, match="must not carry credentials"):
        add("me/r", "http://user:pw@127.0.0.1:8000/v1", "m")
    with pytest.raises(UserError, match="must not carry credentials"):
        add("me/r", "https://token@example.org/v1", "m")
    assert not (tmp_hub / "me" / "r").exists()


def test_a_remote_servers_error_is_relayed_as_its_status_only():
    request = httpx.Request("GET", "http://10.0.0.1/v1/models", headers={"Authorization": f"Bearer {SECRET}"})
    echo = httpx.Response(401, request=request, json={"error": {"message": f"bad key Bearer {SECRET}"}})
    error = openai.AuthenticationError(f"Error code: 401 - Bearer {SECRET}", response=echo, body=echo.json())
    message = failure_message("http://10.0.0.1/v1", error)
    assert message == "the server at http://10.0.0.1/v1 answered 401 (Unauthorized)"
    internal = httpx.Response(200, request=request, text="<html>admin console: db password hunter2</html>")
    error = openai.APIStatusError("internal page", response=internal, body=None)
    assert "hunter2" not in failure_message("http://10.0.0.1/v1", error)
    timeout = openai.APITimeoutError(request)
    assert failure_message("http://10.0.0.1/v1", timeout).endswith("cannot be reached: it timed out")


def test_the_download_of_an_added_hf_id_is_capped_before_it_starts(tmp_hub, monkeypatch):
    files = {"model.safetensors": 5 << 30, "pytorch_model.bin": 5 << 30, "config.json": 1_000, "big.ckpt": 9 << 30}
    assert hub.download_size(files) == (5 << 30) + 1_000  # only what would be fetched: no pickles, no checkpoints
    pipeline = {"model_index.json": 500, "unet/diffusion_pytorch_model.safetensors": 3 << 30,
                "unet/diffusion_pytorch_model.fp16.safetensors": 2 << 30, "v1-5.safetensors": 4 << 30}
    assert hub.download_size(pipeline) == 500 + (3 << 30)
    siblings = [SimpleNamespace(rfilename=k, size=v) for k, v in files.items()]
    monkeypatch.setattr("huggingface_hub.HfApi.model_info", lambda self, *a, **k: SimpleNamespace(siblings=siblings))
    downloads = []
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: downloads.append(a))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(HubError, match="would download 5.0 GiB; this server allows 1.0 GiB"):
        added_models.add("someone/huge", max_download_bytes=1 << 30)
    assert downloads == [] and added_models.added_refs() == []


# --- memory: the upload checks never load what a file declares ----------------------------------------------------

def npz_declaring(path: Path, shape: tuple[int, ...], dtype: str = "|u1") -> Path:
    """An .npz whose one array declares `shape` of zeros, written a MiB at a time (small on disk once deflated)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("x_train.npy", "w",
                                                                                   force_zip64=True) as member:
        member.write(header.getvalue())  # magic and header
        left = int(np.prod(shape)) * np.dtype(dtype).itemsize
        while left > 0:
            member.write(bytes(min(left, 1 << 20)))
            left -= 1 << 20
    return path


def test_an_npz_is_judged_by_its_headers(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UNPACKED", 2 << 20)  # a 3 GiB bomb against 2 GiB, scaled down a thousandfold
    bomb = npz_declaring(tmp_path / "bomb.npz", (3 << 10, 32, 32))  # zeros: small on disk
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(UserError, match="declares 3 MiB of arrays; the limit is 2 MiB"):
        uploads.data_options("gan", bomb, tmp_path / "out")
    monkeypatch.undo()
    header_only = tmp_path / "lies.npz"  # a header that declares far more than the member holds
    with zipfile.ZipFile(header_only, "w") as archive:
        out = io.BytesIO()
        np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 10**6)})
        archive.writestr("x.npy", out.getvalue())
    with pytest.raises(UserError, match="declares"):
        uploads.data_options("gan", header_only, tmp_path / "out")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}] * 20, dtype=object))
    with pytest.raises(UserError, match="Python objects"):
        uploads.data_options("gan", pickled, tmp_path / "out")
    ok = tmp_path / "ok.npz"
    np.savez(ok, x_train=np.zeros((20, 8, 8), np.uint8), y_train=np.arange(20))
    assert uploads.data_options("gan", ok, tmp_path / "out")[-2:] == ["--label_column", "y_train"]


def test_text_and_pairs_are_checked_a_line_at_a_time(tmp_path, monkeypatch):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"text": "a"}\n' + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(UserError, match="line 2 is not JSON"):
        uploads.data_options("text", deep, tmp_path / "out")
    monkeypatch.setattr(uploads, "MAX_LINE", 1000)
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"text": "a" * 5000}) + "\n")
    with pytest.raises(UserError, match="line 1 is longer than"):
        uploads.data_options("text", long, tmp_path / "out")
    wide = tmp_path / "wide.csv"
    wide.write_text("en,zh\n" + "a" * 200_000 + ",b\n")
    with pytest.raises(UserError, match="does not parse"):
        uploads.data_options("translation", wide, tmp_path / "out")
    split = tmp_path / "split.txt"  # a character cut between two read chunks is still one character
    monkeypatch.setattr(uploads, "CHUNK", 7)
    split.write_text("诗" * 1200, encoding="utf-8")
    assert uploads.data_options("text", split, tmp_path / "out") == ["--dataset", str(tmp_path / "out" / "upload.txt")]
    bad = tmp_path / "bad.txt"
    bad.write_bytes("a".encode() * 2000 + b"\xff")
    with pytest.raises(UserError, match="byte 2000"):
        uploads.data_options("text", bad, tmp_path / "out2")


def test_an_image_above_the_pixel_budget_is_refused_from_its_header(tmp_path):
    def png(size: tuple[int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("1", size).save(out, format="PNG")
        return out.getvalue()

    for size, message in [((6_000, 6_000), "6000×6000 pixels; images above 16 megapixels are refused"),
                          ((20_000, 20_000), "not a readable image of at most 16 megapixels")]:  # PIL's bomb check
        archive = tmp_path / f"{size[0]}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for i in range(20):
                zf.writestr(f"c/{i}.png", png((8, 8)))
            zf.writestr("c/huge.png", png(size))  # 36 or 400 megapixels, a few KiB on disk
        with pytest.raises(UserError, match=message):
            uploads.data_options("gan", archive, tmp_path / f"out-{size[0]}")


def test_odd_names_are_neither_files_nor_crashes(tmp_path):
    for name in ["a" * 5000, "x\0y", "a/" * 300 + "b"]:
        with pytest.raises(UserError, match="neither a file of the data folder"):
            uploads.data_options("text", name, tmp_path / "out", data_root=tmp_path)


# --- the job queue: bounded, and never replaces what others are served unasked ----------------------------------

@pytest.fixture
def busy_jobs(tmp_path, tmp_hub):
    """A JobManager whose one device is taken, so that new jobs wait, queued."""
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"], limits=Limits(queued=3, queued_per_user=2,
                                                                         hf_namespaces=["my-org"]))
    jobs.store.save(Job("20260101-000000-aaaaaa", "text", "x", "nano", 10, "me/busy", ["training/train_text.py"],
                        state="running", device="cpu"))
    return jobs


def test_a_job_never_replaces_a_starter_or_an_existing_model_unasked(busy_jobs, tmp_path, tiny_gan):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: a line of a play.\n" * 100)
    start = lambda hub_id, **kw: busy_jobs.start("text", str(corpus), "nano", 10, hub_id, **kw)  # noqa: E731
    busy_jobs.data_root = tmp_path
    with pytest.raises(UserError, match="is a starter shipped with the app"):
        start("aigc-hub/dcgan-mnist")
    with pytest.raises(UserError, match="is a starter"):
        start("aigc-hub/dcgan-mnist", overwrite=True)
    hub.push(tiny_gan, "me/theirs")
    with pytest.raises(UserError, match="in the hub already"):
        start("me/theirs")
    assert start("me/theirs", overwrite=True).state == "queued"
    assert start("me/new").state == "queued"
    with pytest.raises(UserError, match="publishes as me/new already"):
        start("me/new")  # another job's target
    with pytest.raises(UserError, match="only under: my-org; not 'me'"):
        start("me/on-hf", hf=True)


def test_the_queue_is_bounded_in_all_and_per_user(busy_jobs, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: a line of a play.\n" * 100)
    start = lambda i, user=None: busy_jobs.start("text", corpus, "nano", 10, f"me/m{i}", user=user)  # noqa: E731
    start(0, "ann")
    start(1, "ann")
    with pytest.raises(UserError, match="you have 2 training jobs waiting"):
        start(2, "ann")
    start(3, "bob")
    with pytest.raises(UserError, match="3 training jobs are waiting for a device already"):
        start(4)
    assert len([j for j in busy_jobs.jobs() if j.state == "queued"]) == 3
    assert len(list(busy_jobs.store.root.iterdir())) == 4  # the refused ones left no folder


def test_concurrent_starts_never_exceed_the_queue(busy_jobs, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: a line of a play.\n" * 100)
    outcomes = []

    def start(i: int) -> None:
        try:
            outcomes.append(busy_jobs.start("text", corpus, "nano", 10, f"me/c{i}").id)
        except UserError:
            outcomes.append(None)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o is not None for o in outcomes) == 3


# --- MCP: one session per tool call -------------------------------------------------------------------------------

def test_each_mcp_call_is_a_session_of_its_own():
    from aigc_hub.ui.common import SessionStops

    mcp = SimpleNamespace(headers={"x-gradio-user": "mcp"}, session_hash="the-mcp-client")
    browser = SimpleNamespace(headers={}, session_hash="browser-1")
    stops = SessionStops()
    with stops.running(mcp) as first, stops.running(mcp) as second, stops.running(browser) as theirs:
        assert not first.is_set() and not second.is_set()  # a second call does not end the first
        assert stops.stop(mcp).startswith("Nothing to stop")  # an MCP stop reaches no one's run
        assert not (first.is_set() or second.is_set() or theirs.is_set())
        with stops.running(browser) as again:  # a browser session's new run still replaces its old one
            assert theirs.is_set() and not again.is_set()


def test_a_config_that_declares_far_more_than_its_weights_is_refused_before_allocating(tmp_path, tiny_gan):
    """A folder (an added HF id, say) whose config asks for terabytes beside small weights: built on the meta
    device, refused with both sizes, before a layer is allocated (each would take the server down for memory)."""
    import resource
    import shutil

    from conftest import make_char_gpt2, make_diffusion

    lm = make_char_gpt2(tmp_path / "lm", 64)
    config = json.loads((lm / "config.json").read_text())
    (lm / "config.json").write_text(json.dumps({**config, "vocab_size": 10**9}))
    ddpm = make_diffusion(tmp_path / "ddpm")
    unet = json.loads((ddpm / "unet" / "config.json").read_text())
    (ddpm / "unet" / "config.json").write_text(json.dumps({**unet, "block_out_channels": [8192, 16384]}))
    gan = shutil.copytree(tiny_gan, tmp_path / "gan")
    (gan / "config.json").write_text(json.dumps({**json.loads((gan / "config.json").read_text()),
                                                 "num_classes": 10**12}))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for folder, declared in [(lm, r"6\d{4}\d*\.\d MiB"), (ddpm, r"\d+\.\d MiB"), (gan, r"\d+\.\d MiB")]:
        with pytest.raises(ModelLoadError, match=f"could not be loaded: config.json declares {declared} of weights"):
            ModelRegistry().get(str(folder))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 << 10  # KiB: nothing near a GiB


def test_an_npz_of_too_many_arrays_is_refused_as_such(tmp_path):
    many = tmp_path / "many.npz"
    np.savez(many, **{f"a{i}": np.zeros(1, np.uint8) for i in range(uploads.MAX_ARRAYS + 1)})
    with pytest.raises(UserError, match=f"holds {uploads.MAX_ARRAYS + 1} arrays; at most {uploads.MAX_ARRAYS}") as e:
        uploads.data_options("gan", many, tmp_path / "out")
    assert "not a readable" not in str(e.value)
