"""Training data for a job: an uploaded file, a file of the server's data folder, or a Hugging Face dataset name,
checked and turned into the data options of the task's training script.

Uploads are bounded and checked before any training starts: archive bombs (the unpacked size is counted while
unpacking, whatever the archive claims), entries that would land outside the job's folder, links, wrong formats,
too few images, text that is not UTF-8, pairs without two text columns. Each refusal is a UserError that says what
to change.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import UserError

MAX_UPLOAD = 512 << 20
MAX_UNPACKED = 2 << 30
MAX_FILES = 100_000
MIN_IMAGES = 16
MIN_TEXT_CHARS = 1_000
MIN_PAIRS = 20
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
HF_DATASET = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}|[A-Za-z0-9][\w.-]{0,95}")
KINDS = {"gan": "image", "diffusion": "image", "text": "text", "translation": "pairs"}
ACCEPTS = {"image": "a .zip of an image folder (class sub-folders become labels) or an .npz",
           "text": "a UTF-8 .txt or a .jsonl with a text field", "pairs": "a .jsonl or .csv of sentence pairs"}


def data_options(task: str, data: object, out: Path, data_root: Path | None = None) -> list[str]:
    """The script options for `data`: a Path (an upload), a name in `data_root`, or a Hugging Face dataset name.
    Files the job needs are unpacked into `out`."""
    kind = KINDS[task]
    if isinstance(data, Path):
        return _file_options(kind, data, out, upload=True)
    if not isinstance(data, str) or not data.strip():
        raise UserError(f"no training data: upload {ACCEPTS[kind]}, or name a dataset")
    name = data.strip()
    if data_root is not None:
        inside = _in_data_root(data_root, name)
        if inside is not None:
            return _file_options(kind, inside, out, upload=False)
    if not HF_DATASET.fullmatch(name) or ".." in name:
        raise UserError(f"{name[:100]!r} is neither a file of the data folder nor a Hugging Face dataset name")
    return ["--dataset", name]


def _in_data_root(root: Path, name: str) -> Path | None:
    root = root.resolve()
    candidate = (root / name).resolve()
    if root not in candidate.parents or not candidate.is_file():
        return None  # outside the folder, or not there: maybe a hub dataset name
    return candidate


def _file_options(kind: str, path: Path, out: Path, upload: bool) -> list[str]:
    if upload and path.stat().st_size > MAX_UPLOAD:
        raise UserError(f"{path.name}: {path.stat().st_size >> 20} MiB; uploads are limited to {MAX_UPLOAD >> 20} MiB")
    suffix = path.suffix.lower()
    if kind == "image" and suffix == ".zip":
        return _image_zip(path, out / "images")
    if upload and suffix in (".npz", ".txt", ".jsonl", ".csv"):  # the job keeps its own copy: uploads are
        out.mkdir(parents=True, exist_ok=True)  # temporary, and a job may be resumed days later
        path = Path(shutil.copy2(path, out / f"upload{suffix}"))
    if kind == "image" and suffix == ".npz":
        return _npz(path)
    if kind == "text" and suffix in (".txt", ".jsonl"):
        _check_text(path, json_field="text" if suffix == ".jsonl" else None)
        return ["--dataset", str(path)]
    if kind == "pairs" and suffix in (".jsonl", ".csv"):
        source, target = _pair_columns(path)
        return ["--dataset", str(path), "--source_lang", source, "--target_lang", target, "--bidirectional"]
    raise UserError(f"{path.name}: this task takes {ACCEPTS[kind]}")


def _image_zip(path: Path, out: Path) -> list[str]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UserError(f"{path.name} is not a readable .zip archive") from None
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir()]
        if len(entries) > MAX_FILES:
            raise UserError(f"{path.name} holds {len(entries)} files; the limit is {MAX_FILES}")
        images = []
        for info in entries:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise UserError(f"{path.name}: the entry {info.filename[:100]!r} would land outside the job folder")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise UserError(f"{path.name}: the entry {info.filename[:100]!r} is a link; links are refused")
            if parts[0] == "__MACOSX" or parts[-1].startswith(".") or PurePosixPath(parts[-1]).suffix.lower() \
                    not in IMAGE_SUFFIXES:
                continue
            images.append((info, parts))
        if len(images) < MIN_IMAGES:
            raise UserError(f"{path.name} holds {len(images)} images; a GAN or diffusion model needs at least "
                            f"{MIN_IMAGES} (png, jpg, bmp, gif, webp)")
        top = {parts[0] for _, parts in images}
        strip = 1 if len(top) == 1 and all(len(parts) >= 3 for _, parts in images) else 0  # one wrapping folder
        depths = {len(parts) - strip for _, parts in images}
        if depths - {1, 2} or len(depths) > 1:
            raise UserError(f"{path.name}: put every image in a class folder (class/image.png), or none in any")
        out.mkdir(parents=True, exist_ok=True)
        budget = MAX_UNPACKED
        for info, parts in images:
            dest = out.joinpath(*parts[strip:])
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(dest, "wb") as dst:
                while chunk := src.read(1 << 20):  # counted as it comes: an archive can lie about sizes
                    budget -= len(chunk)
                    if budget < 0:
                        shutil.rmtree(out, ignore_errors=True)
                        raise UserError(f"{path.name} unpacks to more than {MAX_UNPACKED >> 30} GiB; refused")
                    dst.write(chunk)
    _check_images(out)
    classes = depths == {2}
    return ["--dataset", str(out), *(["--label_column", "label"] if classes else [])]


def _check_images(folder: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    for file in folder.rglob("*"):
        if file.is_file():
            try:
                with Image.open(file) as image:
                    image.verify()
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                raise UserError(f"{file.relative_to(folder)} is not a readable image") from None


def _npz(path: Path) -> list[str]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            shapes = {k: (npz[k].shape, npz[k].dtype) for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{path.name} is not a readable .npz of arrays ({str(e)[:100]})") from None
    images = [k for k, (s, d) in shapes.items() if len(s) in (3, 4) and s[0] >= MIN_IMAGES and d == np.uint8]
    if not images:
        raise UserError(f"{path.name} holds no uint8 image array (N, H, W[, C]) of at least {MIN_IMAGES} images")
    image = next((k for k in images if "train" in k), images[0])
    n = shapes[image][0][0]
    labels = [k for k, (s, d) in shapes.items() if s == (n,) and np.issubdtype(d, np.integer)]
    label = next((k for k in labels if "train" in k), labels[0] if labels else None)
    return ["--dataset", str(path), "--image_column", image, *(["--label_column", label] if label else [])]


def _check_text(path: Path, json_field: str | None) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path.name} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    if json_field:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise UserError(f"{path.name}: line {e.lineno} is not JSON") from None
        if not all(isinstance(r, dict) and isinstance(r.get(json_field), str) for r in rows):
            raise UserError(f"{path.name}: every line must be an object with a {json_field!r} text field")
        text = "".join(r[json_field] for r in rows)
    if len(text) < MIN_TEXT_CHARS:
        raise UserError(f"{path.name} holds {len(text)} characters; a language model needs at least "
                        f"{MIN_TEXT_CHARS}")


def _pair_columns(path: Path) -> tuple[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path.name} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    try:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(io.StringIO(text)))
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (json.JSONDecodeError, csv.Error) as e:
        raise UserError(f"{path.name} does not parse ({str(e)[:100]})") from None
    if len(rows) < MIN_PAIRS or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{path.name} holds {len(rows)} pairs; a translation model needs at least {MIN_PAIRS}")
    columns = [k for k in rows[0] if all(isinstance(r.get(k), str) and r[k].strip() for r in rows)]
    if len(columns) != 2 or not all(re.fullmatch(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?", c) for c in columns):
        raise UserError(f"{path.name}: each pair needs exactly two text fields named by their language codes "
                        f"(such as en and zh), got {list(rows[0])[:6]}")
    return columns[0], columns[1]
