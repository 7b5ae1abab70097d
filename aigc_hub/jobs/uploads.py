"""Training data for a job: an uploaded file, a file of the server's data folder, or a Hugging Face dataset name,
checked and turned into the data options of the recipe's training script (each recipe names its kind of data:
aigc_hub/recipes.py).

Uploads are bounded and checked before any training starts: archive bombs (the unpacked size is counted while
unpacking, whatever the archive claims), entries that would land outside the job's folder, links, wrong formats,
too few images, images above a pixel budget (refused from their header, before decoding), text that is not UTF-8,
pairs without two text columns. Each refusal is a UserError that says what to change.

The checks run in the web server, so their memory is bounded whatever the file holds: an .npz is judged by its
arrays' headers (never loaded), text is streamed in chunks and lines of bounded length, a row at a time. The
training script, a process of its own, reads the data for real.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import re
import shutil
import struct
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np

from .. import sft_rows
from ..errors import UserError
from ..paths import within
from ..recipes import DATA_KINDS, RECIPES

MAX_UPLOAD = 512 << 20
MAX_UNPACKED = 2 << 30
MAX_FILES = 100_000
MIN_IMAGES = 16
EVAL_MIN_IMAGES = 200  # labelled images for a card with figures: a tenth (20 or more) held out to measure on
EVAL_SAMPLES = 1000  # generated images the card's figures are measured on (the scripts' default 10,000 is for starters)
MIN_TEXT_CHARS = 1_000
MIN_PAIRS = 20
MAX_PIXELS = 4096 * 4096  # an image above it is refused from its header (the scripts train at 32-128 px)
MAX_LINE = 8 << 20  # bytes in one line of a .jsonl / .csv: a row is parsed whole
MAX_ARRAYS = 64  # members of an .npz
CHUNK = 1 << 20
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
HF_DATASET = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}|[A-Za-z0-9][\w.-]{0,95}")


def data_options(recipe: str, data: object, out: Path, data_root: Path | None = None) -> list[str]:
    """The script options for `data` given to `recipe`: a Path (an upload), a name in `data_root`, or a Hugging
    Face dataset name. Files the job needs are unpacked into `out`."""
    kind = RECIPES[recipe].data
    if isinstance(data, Path):
        return _file_options(kind, data, out, upload=True)
    if not isinstance(data, str) or not data.strip():
        raise UserError(f"no training data: upload {DATA_KINDS[kind]}, or name a dataset")
    name = data.strip()
    if data_root is not None:
        inside = _in_data_root(data_root, name)
        if inside is not None:
            return _file_options(kind, inside, out, upload=False)
    if not HF_DATASET.fullmatch(name) or ".." in name:
        raise UserError(f"{name[:100]!r} is neither a file of the data folder nor a Hugging Face dataset name")
    return ["--dataset", name]


def first_rows(data: object, data_root: object, limit: int) -> list | None:
    """The first `limit` rows of a .jsonl upload or data-folder file (None for other data), read in bounded memory."""
    path = data if isinstance(data, Path) else _in_data_root(Path(data_root), data) if data_root and isinstance(
        data, str) else None
    if path is None or path.suffix.lower() != ".jsonl":
        return None
    return [row for _, row in itertools.islice(_json_rows(path), limit)]


def _in_data_root(root: Path, name: str) -> Path | None:
    try:
        candidate = (root / name).resolve()
        if not within(candidate, [root]) or not candidate.is_file():
            return None  # outside the folder, or not there: maybe a hub dataset name
    except (OSError, ValueError):  # a name too long for a path, a NUL byte: not a file of the folder
        return None
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
        _check_text(path, rows=suffix == ".jsonl")
        return ["--dataset", str(path)]
    if kind == "pairs" and suffix in (".jsonl", ".csv"):
        source, target = _pair_columns(path)
        return ["--dataset", str(path), "--source_lang", source, "--target_lang", target, "--bidirectional"]
    raise UserError(f"{path.name}: this recipe takes {DATA_KINDS[kind]}")


def _image_zip(path: Path, out: Path) -> list[str]:
    try:
        if _more_entries_than(path, MAX_FILES):
            raise UserError(f"{path.name} holds more than {MAX_FILES} entries (files and folders): the limit")
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UserError(f"{path.name} is not a readable .zip archive") from None
    with archive:
        entries = [i for i in archive.infolist() if not i.is_dir()]
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
    # One folder of images is no classes (datasets' imagefolder gives no label column for a single folder).
    classes = depths == {2} and len({parts[strip] for _, parts in images}) > 1
    return ["--dataset", str(out), *(["--label_column", "label"] if classes else []), *evaluation(len(images), classes)]


def _more_entries_than(path: Path, limit: int) -> bool:
    """Whether the zip's central directory holds more than `limit` entries, counted by walking its headers, at
    most limit + 1 of them: zipfile builds an object of ~600 bytes for every entry before anything can count them,
    and 512 MiB of empty entries are 6 million (3.5 GB in the server). zipfile reads the same headers afterwards."""
    with open(path, "rb") as f:
        end = zipfile._EndRecData(f)  # the end records, zip64 too (what ZipFile itself reads first)
        if not end:
            raise zipfile.BadZipFile
        start = end[zipfile._ECD_LOCATION] - end[zipfile._ECD_SIZE]
        if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
            start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
        f.seek(max(0, start))
        for _ in range(limit + 1):
            header = f.read(zipfile.sizeCentralDir)
            if len(header) < zipfile.sizeCentralDir or header[:4] != zipfile.stringCentralDir:
                return False
            name, extra, comment = struct.unpack_from("<HHH", header, 28)
            f.seek(name + extra + comment, 1)
    return True


def _check_images(folder: Path) -> None:
    import warnings

    from PIL import Image, UnidentifiedImageError

    for file in folder.rglob("*"):
        if not file.is_file():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(file) as image:  # reads the header only
                    size = image.size
                    if size[0] * size[1] <= MAX_PIXELS:
                        image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
                Image.DecompressionBombWarning):
            raise UserError(f"{file.relative_to(folder)} is not a readable image of at most "
                            f"{MAX_PIXELS // 1_000_000} megapixels") from None
        if size[0] * size[1] > MAX_PIXELS:
            raise UserError(f"{file.relative_to(folder)} is {size[0]}×{size[1]} pixels; images above "
                            f"{MAX_PIXELS // 1_000_000} megapixels are refused (the models train at 32 to 128 px)")


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's shape and dtype from its .npy header: nothing is loaded, whatever size the arrays declare."""
    unreadable = (ValueError, OSError, zipfile.BadZipFile, EOFError)
    try:
        archive = zipfile.ZipFile(path)
    except unreadable as e:
        raise UserError(f"{path.name} is not a readable .npz of arrays ({str(e)[:100]})") from None
    shapes = {}
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise UserError(f"{path.name} holds {len(members)} arrays; at most {MAX_ARRAYS} are read")
        for info in members:
            try:
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
            except unreadable as e:
                raise UserError(f"{path.name} is not a readable .npz of arrays ({str(e)[:100]})") from None
            shapes[info.filename.removesuffix(".npy")] = (tuple(shape), dtype)
    return shapes


def _npz(path: Path) -> list[str]:
    shapes = npz_headers(path)
    if any(dtype.hasobject for _, dtype in shapes.values()):
        raise UserError(f"{path.name} holds Python objects (pickles); only plain arrays are read")
    declared = sum(int(np.prod(shape, dtype=np.float64)) * dtype.itemsize for shape, dtype in shapes.values())
    if declared > MAX_UNPACKED:
        raise UserError(f"{path.name} declares {declared / 2**20:,.0f} MiB of arrays; the limit is "
                        f"{MAX_UNPACKED / 2**20:,.0f} MiB")
    images = [k for k, (s, d) in shapes.items() if len(s) in (3, 4) and s[0] >= MIN_IMAGES and d == np.uint8]
    if not images:
        raise UserError(f"{path.name} holds no uint8 image array (N, H, W[, C]) of at least {MIN_IMAGES} images")
    image = next((k for k in images if "train" in k), images[0])
    n = shapes[image][0][0]
    labels = [k for k, (s, d) in shapes.items() if s == (n,) and np.issubdtype(d, np.integer)]
    label = next((k for k in labels if "train" in k), labels[0] if labels else None)
    return ["--dataset", str(path), "--image_column", image, *(["--label_column", label] if label else []),
            *evaluation(n, label is not None)]


def evaluation(images: int, labelled: bool) -> list[str]:
    """How a model of this data is measured for its card. Labelled data of EVAL_MIN_IMAGES or more: a tenth held
    out, and a classifier of its own labels trained in the job on the rest (the FD's features, the judge of
    conditional accuracy); smaller or unlabelled data gets no figures (the card says so)."""
    if not labelled or images < EVAL_MIN_IMAGES:
        return []
    return ["--holdout_fraction", "0.1", "--eval_classifier", "own", "--eval_samples", str(EVAL_SAMPLES)]


def _not_utf8(path: Path, offset: int) -> UserError:
    return UserError(f"{path.name} is not UTF-8 text (byte {offset}): save it as UTF-8")


def _text_chars(path: Path) -> int:
    """Characters in a UTF-8 file, decoded a chunk at a time."""
    decoder, chars, offset = codecs.getincrementaldecoder("utf-8")(), 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            try:
                chars += len(decoder.decode(chunk))
            except UnicodeDecodeError as e:
                raise _not_utf8(path, offset + e.start) from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _not_utf8(path, offset) from None
    return chars


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 file, one line in memory at a time; a line over MAX_LINE bytes is refused."""
    offset = 0
    with open(path, "rb") as f:
        for number in itertools.count(1):
            raw = f.readline(MAX_LINE + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE:
                raise UserError(f"{path.name}: line {number} is longer than {MAX_LINE >> 20} MiB")
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(path, offset + e.start) from None
            offset += len(raw)


def _json_rows(path: Path) -> Iterator[tuple[int, object]]:
    for number, line in _lines(path):
        if line.strip():
            try:
                yield number, json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise UserError(f"{path.name}: line {number} is not JSON (or nests too deeply)") from None


def _check_text(path: Path, rows: bool) -> None:
    """Plain UTF-8 text, or rows all of one format of sft_rows (text, prompt + completion, chat messages)."""
    if not rows:
        chars = _text_chars(path)
    else:
        chars, fmt = 0, None
        for number, row in _json_rows(path):
            try:
                fmt = fmt or sft_rows.row_format(row.keys() if isinstance(row, dict) else ())
                if fmt != "text" and fmt != sft_rows.row_format(row.keys()):
                    raise ValueError(f"every row must be of one format, {fmt}")
                texts = sft_rows.texts_of(row) if fmt != "text" else [row["text"]]
                if not texts or not all(isinstance(t, str) for t in texts):
                    raise ValueError("its fields must hold text")
            except (ValueError, KeyError) as e:
                raise UserError(f"{path.name}: line {number}: {e}") from None
            chars += sum(len(t) for t in texts)
    if chars < MIN_TEXT_CHARS:
        raise UserError(f"{path.name} holds {chars} characters; a language model needs at least "
                        f"{MIN_TEXT_CHARS}")


def _csv_rows(path: Path) -> Iterator[tuple[int, object]]:
    with open(path, encoding="utf-8", newline="") as f:
        try:
            for row in csv.DictReader(f):  # csv's own field size limit bounds a row
                yield 0, row
        except UnicodeDecodeError:
            raise UserError(f"{path.name} is not UTF-8 text: save it as UTF-8") from None
        except csv.Error as e:
            raise UserError(f"{path.name} does not parse ({str(e)[:100]})") from None


def _pair_columns(path: Path) -> tuple[str, str]:
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _json_rows(path)
    count, columns, first = 0, None, None
    for _, row in rows:  # one row at a time: only the columns every row fills in are kept
        if not isinstance(row, dict):
            raise UserError(f"{path.name}: every pair must be an object of text fields")
        if columns is None:
            first, columns = list(row)[:6], list(row)
        columns = [k for k in columns if isinstance(row.get(k), str) and row[k].strip()]
        count += 1
    if count < MIN_PAIRS:
        raise UserError(f"{path.name} holds {count} pairs; a translation model needs at least {MIN_PAIRS}")
    # Other fields (an attribution, a source) are left alone: the script reads the two languages by name.
    columns = [c for c in columns or [] if re.fullmatch(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?", c)]
    if len(columns) != 2:
        raise UserError(f"{path.name}: each pair needs exactly two text fields named by their language codes "
                        f"(such as en and zh), got {first}")
    return columns[0], columns[1]
