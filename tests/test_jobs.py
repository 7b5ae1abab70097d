"""Training jobs (aigc_hub.jobs): uploads checked before anything runs, the real training scripts as subprocesses,
one job per device, Stop and Resume to the same weights, a state on disk that survives a killed server."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigc_hub import hub
from aigc_hub.errors import UserError
from aigc_hub.jobs import JobManager, read
from aigc_hub.jobs import uploads
from conftest import REPO, assert_same_weights, wait_for

TEXT = "".join(f"ROMEO: thou art my lord {i}, and the king shall speak now.\n" for i in range(400))




def png(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def image_zip(path: Path, names: list[str], data: bytes | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(names):
            zf.writestr(name, data if data is not None else png(i % 255))
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_uploads_are_checked_before_anything_runs(tmp_path, monkeypatch):
    out = tmp_path / "out"
    classes = [f"data/{c}/{i}.png" for c in ("cats", "dogs") for i in range(10)]
    assert uploads.data_options("gan", image_zip(tmp_path / "ok.zip", classes), out) == [
        "--dataset", str(out / "images"), "--label_column", "label"]
    assert sorted(p.name for p in (out / "images").iterdir()) == ["cats", "dogs"]  # the wrapping folder is gone
    flat = uploads.data_options("gan", image_zip(tmp_path / "flat.zip", [f"{i}.png" for i in range(20)]),
                                tmp_path / "flat")
    assert "--label_column" not in flat
    many = [f"{c}/{i}.png" for c in ("cats", "dogs") for i in range(100)]  # labelled and big enough to measure
    assert uploads.data_options("gan", image_zip(tmp_path / "many.zip", many), tmp_path / "many")[4:] == [
        "--holdout_fraction", "0.1", "--eval_classifier", "own", "--eval_samples", "1000"]
    flat = uploads.data_options("gan", image_zip(tmp_path / "flat2.zip", [f"{i}.png" for i in range(200)]),
                                tmp_path / "flat2")
    assert "--eval_classifier" not in flat, "no labels, no classifier of them"
    bad = {
        "climbs out": (image_zip(tmp_path / "a.zip", ["../../evil.png", *classes]), "outside the job folder"),
        "absolute": (image_zip(tmp_path / "b.zip", ["/etc/evil.png", *classes]), "outside the job folder"),
        "too few": (image_zip(tmp_path / "c.zip", ["a/1.png", "a/2.png"]), "at least 16"),
        "not images": (image_zip(tmp_path / "d.zip", [f"{i}.txt" for i in range(30)]), "holds 0 images"),
        "mixed depths": (image_zip(tmp_path / "e.zip", ["x.png", *[f"c/{i}.png" for i in range(20)]]), "class folder"),
        "broken image": (image_zip(tmp_path / "f.zip", [f"c/{i}.png" for i in range(20)], b"not a png"),
                         "not a readable image"),
    }
    link = tmp_path / "g.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("c/link.png")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
        for i in range(20):
            zf.writestr(f"c/{i}.png", png(i))
    bad["a link"] = (link, "link")
    not_zip = tmp_path / "h.zip"
    not_zip.write_bytes(b"PK but not really")
    bad["not a zip"] = (not_zip, "not a readable .zip")
    for label, (path, message) in bad.items():
        with pytest.raises(UserError, match=message):
            uploads.data_options("gan", path, tmp_path / label.replace(" ", "-"))
    monkeypatch.setattr(uploads, "MAX_UNPACKED", 100_000)  # a bomb: small archive, big content
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(20):
            zf.writestr(f"c/{i}.png", png(i) + b"\0" * 50_000)
    assert bomb.stat().st_size < 50_000
    with pytest.raises(UserError, match="unpacks to more than"):
        uploads.data_options("gan", bomb, tmp_path / "bomb")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café ".encode("latin-1") * 500)
    with pytest.raises(UserError, match="not UTF-8"):
        uploads.data_options("text", latin, out)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(UserError, match="at least 1000"):
        uploads.data_options("text", short, out)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"en": f"I have {i} books.", "zh": f"我有{i}本书。"}) + "\n" for i in range(30)))
    assert uploads.data_options("translation", pairs, out) == ["--dataset", str(out / "upload.jsonl"), "--source_lang",
                                                                 "en", "--target_lang", "zh", "--bidirectional"]
    attributed = tmp_path / "attributed.jsonl"  # Tatoeba's rows, with their attribution: the two codes are read
    attributed.write_text("".join(json.dumps({"en": f"I have {i} books.", "zh": f"我有{i}本书。", "attribution":
                                              "CC-BY 2.0 (France)"}) + "\n" for i in range(30)))
    assert uploads.data_options("translation", attributed, out)[2:] == ["--source_lang", "en", "--target_lang", "zh",
                                                                        "--bidirectional"]
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("".join(json.dumps({"source": "a", "target": "b"}) + "\n" for _ in range(30)))
    with pytest.raises(UserError, match="language codes"):
        uploads.data_options("translation", wrong, out)
    with pytest.raises(UserError, match="line 1: rows with columns .* expected 'text', 'prompt' and 'completion'"):
        uploads.data_options("text", pairs, out)  # pairs for a language model
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"prompt": "a" * 600, "completion": "b"}) + "\n" + json.dumps({"text": "c" * 600}))
    with pytest.raises(UserError, match="line 2: every row must be of one format, prompt-completion"):
        uploads.data_options("text", mixed, out)
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "Hi " * 20},
                                                      {"role": "assistant", "content": "Hello"}]}) + "\n"
                             for _ in range(20)))
    assert uploads.data_options("text", chats, out) == ["--dataset", str(out / "upload.jsonl")]
    np.savez(tmp_path / "arrays.npz", x=np.zeros((20, 8, 8), dtype=np.uint8))
    with pytest.raises(UserError, match="this recipe takes"):
        uploads.data_options("text", tmp_path / "arrays.npz", out)
    with pytest.raises(UserError, match="neither a file of the data folder"):
        uploads.data_options("text", "../../etc/passwd", out, data_root=tmp_path)


@pytest.mark.slow  # training subprocesses
def test_a_job_trains_publishes_and_shows_its_progress(tmp_path, tmp_hub, corpus, monkeypatch):
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))  # the job's environment is the server's
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"])
    job = jobs.start("text", corpus, "nano", 40, "me/from-a-job", trackio=True)
    second = jobs.start("text", corpus, "nano", 4, "me/second")
    assert jobs.get(second.id).state == "queued"  # one job per device: it waits
    wait_for(lambda: jobs.get(second.id).state in ("finished", "failed"))
    done = jobs.get(job.id)
    assert done.state == "finished" and done.published == "me/from-a-job", jobs.store.log(job.id).read_text()[-3000:]
    assert jobs.get(second.id).state == "finished" and jobs.get(second.id).started >= done.ended
    assert any(e.ref == "me/from-a-job" for e in hub.list_models())
    progress = read(jobs.store.log(job.id), jobs.store.output(job.id), 40)
    assert progress.step == 40 and len(progress.curves["loss"]) >= 2 and "val_loss" in progress.figures
    assert progress.texts.get("sample")
    assert list((tmp_path / "trackio").rglob("*.db")), "trackio logged beside tensorboard"


@pytest.mark.parametrize("zip64", [False, pytest.param(True, marks=pytest.mark.slow)])  # 70,000 entries: 3 s
def test_a_zip_of_too_many_entries_is_refused_before_they_take_memory(tmp_path, monkeypatch, zip64):
    """zipfile builds an object (~600 bytes) for every entry before anything can count them: 512 MiB of empty
    entries would take 3.5 GB in the server. The entries are counted from the central directory first."""
    import tracemalloc

    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:  # past 65,535 entries the archive needs zip64's end records
        for i in range(70_000 if zip64 else 20_000):
            zf.writestr(f"{i:x}", b"")
    monkeypatch.setattr(uploads, "MAX_FILES", 1_000)
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="more than 1000 entries"):
            uploads.data_options("gan", many, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, f"{peak / 2**20:.1f} MiB to refuse it"  # all of zipfile's entries: 12-40 MiB
    monkeypatch.setattr(uploads, "MAX_FILES", 100_000)  # under the limit, the same archive reaches the image check
    with pytest.raises(UserError, match="holds 0 images"):
        uploads.data_options("gan", many, tmp_path / "out")


def test_the_default_id_is_one_no_model_has(tmp_path, tmp_hub):
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"])
    assert jobs.free_id("me/my-gan") == "me/my-gan"
    hub.push(hub.resolve("aigc-hub/dcgan-mnist"), "me/my-gan")
    assert jobs.free_id("me/my-gan") == "me/my-gan-2"
    assert jobs.free_id("aigc-hub/dcgan-mnist") == "aigc-hub/dcgan-mnist-2"  # a starter's id is never offered


@pytest.mark.slow  # training subprocesses
def test_48_uploaded_images_train_on_every_image_recipes_first_preset(tmp_path, tmp_hub):
    """The tab's defaults on the smallest upload it takes: the presets' batches (64, 128) are cut to the data."""
    upload = image_zip(tmp_path / "digits.zip", [f"{'ab'[i % 2]}/{i}.png" for i in range(48)])  # two classes
    one_folder = image_zip(tmp_path / "one.zip", [f"mine/{i}.png" for i in range(48)])  # no classes
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"])
    started = [jobs.start(recipe, upload, None, 3, f"me/small-{recipe}") for recipe in ("gan", "diffusion")]
    started.append(jobs.start("gan", one_folder, None, 3, "me/one-folder"))
    wait_for(lambda: all(jobs.get(j.id).state in ("finished", "failed") for j in started))
    for job in started:
        log = jobs.store.log(job.id).read_text()
        assert jobs.get(job.id).state == "finished", log[-3000:]
        assert "is more than the 48 training items hold: batches of 48" in log
        said = " ".join(read(jobs.store.log(job.id), jobs.store.output(job.id), 3).notices)  # the live view's
        assert "batches of 48" in said and "48 images is little: a" in said and "docs/measurements.md" in said


@pytest.mark.slow  # a training subprocess
def test_a_model_of_labelled_uploaded_images_is_measured_with_a_classifier_trained_in_the_job(tmp_path, tmp_hub):
    """No shipped classifier knows the user's classes: the job holds a tenth out, trains one on the rest, and the
    card states FD in its features, the floor, conditional accuracy and the judge's own accuracy."""
    # Two classes a classifier can tell apart: image k is a square of grey k, dark 0-109, light 110-219.
    upload = image_zip(tmp_path / "shades.zip", [f"{c}/{i}.png" for c in ("dark", "light") for i in range(110)])
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"])
    job = jobs.start("gan", upload, "tiny", 3, "me/shades")
    wait_for(lambda: jobs.get(job.id).state in ("finished", "failed"))
    assert jobs.get(job.id).state == "finished", jobs.store.log(job.id).read_text()[-3000:]
    card = (hub.resolve("me/shades") / "README.md").read_text()
    for figure in ("FD (classifier features)", "FD real-vs-real floor", "conditional accuracy",
                   "classifier accuracy on the real held-out images"):
        assert figure in card
    assert "a small classifier trained in the same run on the training images only" in card
    assert ("![Samples of the final weights](sample.png)\n\nOne column per class, in label order: `dark`, "
            "`light`.") in card
    grid = Image.open(hub.resolve("me/shades") / "sample.png")
    assert grid.width < grid.height, "two columns, one per class"
    assert (jobs.store.output(job.id) / "logs" / "eval-classifier").is_dir()
    assert not any("classifier" in p.name for p in hub.resolve("me/shades").iterdir()), "kept, not published"


@pytest.mark.slow  # training subprocesses
def test_a_model_published_while_a_job_waited_is_kept_unless_overwrite_was_asked(tmp_path, tmp_hub, corpus):
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"])
    first = jobs.start("text", corpus, "nano", 4, "me/first")
    late = jobs.start("text", corpus, "nano", 4, "me/taken")
    asked = jobs.start("text", corpus, "nano", 4, "me/replaced", overwrite=True)
    assert jobs.get(late.id).state == "queued"  # one job per device: it waits behind the first
    for repo_id in ("me/taken", "me/replaced"):  # published by someone else meanwhile
        hub.push(hub.resolve("aigc-hub/dcgan-mnist"), repo_id)
    wait_for(lambda: all(jobs.get(j.id).state in ("finished", "failed") for j in (first, late, asked)))
    refused = jobs.get(late.id)
    assert refused.state == "failed" and "me/taken was published while this run trained" in refused.message
    assert hub.resolve("me/taken").joinpath("model.safetensors").read_bytes() == \
        hub.resolve("aigc-hub/dcgan-mnist").joinpath("model.safetensors").read_bytes()
    assert (jobs.store.output(late.id) / "model.safetensors").is_file()  # the trained model is not lost
    assert jobs.get(asked.id).state == "finished" and jobs.get(first.id).state == "finished"
    assert hub.is_model_folder(hub.resolve("me/replaced")) and (hub.resolve("me/replaced") / "tokenizer.json").is_file()


@pytest.mark.slow  # training subprocesses
def test_stop_then_resume_ends_with_the_weights_of_an_unstopped_job(tmp_path, tmp_hub, corpus):
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"])
    whole = jobs.start("text", corpus, "nano", 60, "me/whole")
    wait_for(lambda: jobs.get(whole.id).state == "finished")
    job = jobs.start("text", corpus, "nano", 60, "me/stopped")
    wait_for(lambda: read(jobs.store.log(job.id), jobs.store.output(job.id), 60).step >= 5)
    jobs.stop(job.id)
    wait_for(lambda: jobs.get(job.id).state == "stopped")
    [checkpoint] = jobs.store.output(job.id).glob("checkpoints/checkpoint-*")
    assert int(checkpoint.name.split("-")[1]) < 60
    jobs.resume(job.id)
    wait_for(lambda: jobs.get(job.id).state == "finished")
    assert_same_weights(jobs.store.output(whole.id), jobs.store.output(job.id))
    assert jobs.get(job.id).runs == 2


@pytest.mark.slow  # training subprocesses
def test_a_killed_server_leaves_its_job_interrupted_and_resumable(tmp_path, tmp_hub, corpus):
    """The server is a separate process that starts a job and is killed (SIGKILL): its job gets SIGTERM from the
    kernel, saves its step and ends; a new manager on the same folder shows it interrupted, and Resume finishes it."""
    root = tmp_path / "jobs"
    script = (f"import sys, time; sys.path.insert(0, {str(REPO)!r})\n"
              "from pathlib import Path\nfrom aigc_hub.jobs import JobManager\n"
              f"jobs = JobManager(Path({str(root)!r}), devices=['cpu'])\n"
              f"job = jobs.start('text', Path({str(corpus)!r}), 'nano', 80, 'me/interrupted')\n"
              "print(job.id, flush=True)\ntime.sleep(600)\n")
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "AIGC_HUB_HOME": str(tmp_hub)})
    job_id = server.stdout.readline().strip()
    log, output = root / job_id / "train.log", root / job_id / "output"
    wait_for(lambda: read(log, output, 80).step >= 5)
    server.send_signal(signal.SIGKILL)
    server.wait()
    jobs = JobManager(root, devices=["cpu"])
    wait_for(lambda: jobs.get(job_id).state == "interrupted")
    assert list(output.glob("checkpoints/checkpoint-*")), "the job saved its step as it went"
    jobs.resume(job_id)
    wait_for(lambda: jobs.get(job_id).state == "finished")
    assert "resumed from" in log.read_text()


def test_the_live_view_warns_of_a_collapsed_gan_and_a_diverged_loss():
    from aigc_hub.jobs.progress import Progress

    healthy = Progress(curves={"loss_d": [(10, 1.2), (20, 0.9), (30, 0.02), (40, 0.8)], "loss_g": [(40, 1.1)]})
    assert healthy.warnings() == []
    collapsed = Progress(curves={"loss_d": [(10, 1.2), (20, 0.01), (30, 0.003), (40, 0.0)]})
    assert "collapsed" in collapsed.warnings()[0]
    assert "diverged" in Progress(curves={"loss": [(5, 0.3), (6, float("nan"))]}).warnings()[0]


def test_the_live_view_shows_the_scripts_notices_once_from_the_start_of_a_long_log(tmp_path):
    from aigc_hub.jobs.progress import read

    log = tmp_path / "job.log"
    bars = "".join(f"\rsteps:  {i // 30}%|#| {i}/3000 [00:{i % 60:02d}<01:00,  9.50it/s]" for i in range(3000))
    log.write_text("notice: 48 images is little\nnotice: batches of 48\n" + bars + "\nnotice: batches of 48\n")
    assert log.stat().st_size > 100_000  # the notices at the start are past the tail the bar is read from
    p = read(log, tmp_path / "output", 3000)
    assert p.notices == ["48 images is little", "batches of 48"] and p.step == 2999


def test_the_expected_time_comes_from_this_servers_last_job_of_that_preset_else_the_projects_figure(tmp_path):
    from aigc_hub.jobs import Job
    from aigc_hub.jobs.estimate import CPU_SECONDS_PER_STEP, expected

    from aigc_hub.recipes import RECIPES

    assert set(CPU_SECONDS_PER_STEP) == {(key, p) for key, r in RECIPES.items() for p in r.presets}, "one each"
    jobs = JobManager(tmp_path / "jobs", devices=["cpu"])
    each = CPU_SECONDS_PER_STEP["gan", "small"]
    said = expected(jobs, "gan", "small", 120 / each)
    assert "about 2 min of training on cpu for" in said and "the project's measurement" in said
    assert "nothing measured yet for this model" in expected(jobs, "gan", "me/base, full fine-tune", 100)
    assert [expected(jobs, "gan", "small", n) for n in (0, float("nan"), float("inf"), 10**9)] == [""] * 4
    for job_id, preset, rate in (("20261204-090000-aaaaaa", "small", "2.00it/s"),
                                 ("20261204-090100-bbbbbb", "tiny", "50.00it/s")):
        jobs.store.save(Job(job_id, "gan", "data.zip", preset, 1000, "me/gan", [], state="done"))
        jobs.store.log(job_id).write_text(f"steps:  50%|#####     | 500/1000 [04:10<04:10, {rate}]\n")
    said = expected(jobs, "gan", "small", 1000)
    assert "about 8 min" in said and "0.5 s a step: job 20261204-090000-aaaaaa ran at that speed on this server" in said
    assert "the live view shows it" in expected(JobManager(tmp_path / "gpu", devices=["cuda:0"]), "gan", "small",
                                                 1000), "no CPU figure stands for a GPU"


@pytest.mark.parametrize("recipe", ["text", "translation"])
def test_every_preset_the_train_tab_offers_builds_its_model(recipe, tmp_path):
    """A preset whose shapes do not fit (6 heads of a 256-wide model) failed only once a user's job had started."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from aigc_hub.recipes import RECIPES
    from training import train_text, train_translation

    script, auto, starter, extra = {
        "text": (train_text, AutoModelForCausalLM, "gpt-tinyshakespeare", []),
        "translation": (train_translation, AutoModelForSeq2SeqLM, "translator-en-zh",
                        ["--source_lang", "en", "--target_lang", "zh"])}[recipe]
    tokenizer = AutoTokenizer.from_pretrained(str(REPO / "starters" / "aigc-hub" / starter))
    for preset, options in RECIPES[recipe].presets.items():
        args = script.parse_args(["--dataset", "x", "--output_dir", str(tmp_path), *extra, *options])
        with torch.device("meta"):
            model = auto.from_config(script.model_config(args, tokenizer))
        assert sum(p.numel() for p in model.parameters()) > 0, preset
