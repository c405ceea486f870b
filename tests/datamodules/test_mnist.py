"""MNIST / Fashion-MNIST on tiny IDX files written with the real headers."""

from __future__ import annotations

import gzip
import hashlib
import struct
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from latentzoo.datamodules import _files, mnist
from latentzoo.datamodules._files import CorruptFileError
from latentzoo.datamodules.mnist import MNIST, FashionMNIST, read_idx

N_TRAIN, N_TEST = 40, 12
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000 08 ndim, big-endian int32 dims, payload."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(raw: Path, seed: int = 0, gz: bool = True) -> dict[str, np.ndarray]:
    """Write the four files of a small MNIST; image ``i`` of each split has pixel (0, 0) = ``i``."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        arrays[f"{prefix}-images-idx3-ubyte"] = images
        arrays[f"{prefix}-labels-idx1-ubyte"] = rng.integers(0, 10, size=n, dtype=np.uint8)
    raw.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_pixels_and_labels_round_trip(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist(tmp_path / "MNIST" / "raw", gz=gz)
    dm = MNIST(data_dir=str(tmp_path), val_size=8)
    for train, prefix in ((True, "train"), (False, "t10k")):
        x, y = dm.load_split(train)
        assert x.dtype == torch.uint8 and x.shape == (len(x), 1, 28, 28)
        np.testing.assert_array_equal(x[:, 0].numpy(), arrays[f"{prefix}-images-idx3-ubyte"])
        assert y.dtype == torch.int64
        np.testing.assert_array_equal(y.numpy(), arrays[f"{prefix}-labels-idx1-ubyte"])


def test_seeded_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")

    def ids(seed: int) -> tuple[list[int], list[int]]:
        dm = MNIST(data_dir=str(tmp_path), val_size=10, seed=seed, batch_size=8)
        dm.setup("fit")
        assert dm.train_set is not None and dm.val_set is not None
        return dm.train_set.x[:, 0, 0, 0].tolist(), dm.val_set.x[:, 0, 0, 0].tolist()

    train, val = ids(seed=0)
    assert len(val) == 10 and len(train) == N_TRAIN - 10
    assert sorted(train + val) == list(range(N_TRAIN))  # disjoint and complete
    assert ids(seed=0) == (train, val)
    assert ids(seed=1)[1] != val


def test_loader_batches(tmp_path: Path, check_loaders) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    check_loaders(MNIST(data_dir=str(tmp_path), val_size=8, batch_size=5), 5)


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    path = raw / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*delete"):
        MNIST(data_dir=str(tmp_path)).load_split(train=True)


def test_idx_header_checks(tmp_path: Path) -> None:
    images = np.zeros((3, 28, 28), np.uint8)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(idx_bytes(images)[:-1])
    with pytest.raises(ValueError, match="short-idx3-ubyte holds 2367 bytes"):
        read_idx(short, mnist.IMAGES_MAGIC)
    labels = tmp_path / "labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        read_idx(labels, mnist.IMAGES_MAGIC)
    assert read_idx(labels, mnist.LABELS_MAGIC).shape == (3,)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_damaged_idx_files_are_refused_by_name(
    tmp_path: Path, gz: bool, damaged_copies, load_or_refuse
) -> None:
    """200 damaged versions of each training file: each is refused naming it, or, where the damage
    is a flipped payload bit, loads with just that one pixel or label changed."""
    raw = tmp_path / "MNIST" / "raw"
    arrays = write_mnist(raw, gz=gz)
    expected = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    dm = MNIST(data_dir=str(tmp_path))
    outcomes: Counter[tuple[str, str]] = Counter()
    for seed, name in enumerate(("train-images-idx3-ubyte", "train-labels-idx1-ubyte")):
        path = raw / (name + (".gz" if gz else ""))
        valid = path.read_bytes()
        for kind, data in damaged_copies(valid, 200, seed=seed, header=24 if gz else 16):
            path.write_bytes(data)
            result = load_or_refuse(path, lambda: dm.load_split(train=True))
            if isinstance(result, CorruptFileError):
                outcomes[kind, "refused"] += 1
                continue
            x, y = result
            changed = (x[:, 0].numpy() != expected[0]).sum() + (y.numpy() != expected[1]).sum()
            assert changed <= 1, f"{kind} of {name} loaded with {changed} values changed"
            outcomes[kind, "loaded"] += 1
        path.write_bytes(valid)
    assert outcomes["truncated", "loaded"] == outcomes["random bytes", "loaded"] == 0
    assert outcomes["truncated", "refused"] == outcomes["random bytes", "refused"] == 100
    if not gz:  # a flipped pixel is harmless; in a .gz file the CRC catches it
        assert outcomes["bit flip", "loaded"] > 50


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_header_claiming_terabytes_allocates_nothing(tmp_path: Path, gz: bool) -> None:
    header = struct.pack(">IIII", mnist.IMAGES_MAGIC, 2**31 - 1, 2**31 - 1, 2**31 - 1)
    data = header + bytes(28 * 28)
    path = tmp_path / ("images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError, match=r"holds 800 bytes but its header") as info:
            read_idx(path, mnist.IMAGES_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.path == path and peak < 2**22  # far below the 2**93 bytes claimed
    negative = struct.pack(">IIII", mnist.IMAGES_MAGIC, 2**32 - 1, 2**32 - 28, 28)
    data = negative + bytes(28 * 28)  # (-1) * (-28) * 28 = 784: the payload's size
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(CorruptFileError, match="negative dimensions"):
        read_idx(path, mnist.IMAGES_MAGIC)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_trailing_bytes_are_refused(tmp_path: Path, gz: bool) -> None:
    data = idx_bytes(np.zeros((3, 28, 28), np.uint8)) + b"\x00"  # 2368 bytes and one more
    path = tmp_path / ("images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(CorruptFileError, match=r"holds more than the 2368 bytes that its header"):
        read_idx(path, mnist.IMAGES_MAGIC)


def test_label_outside_the_classes_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.full(N_TEST, 10, np.uint8)))
    with pytest.raises(CorruptFileError, match=r"t10k-labels-idx1-ubyte holds label 10, outside"):
        MNIST(data_dir=str(tmp_path)).load_split(train=False)


def test_debian_file_damaged_says_reinstall(tmp_path: Path, monkeypatch) -> None:
    debian = tmp_path / "usr" / "share" / "fashion"
    write_mnist(debian)
    monkeypatch.setattr(mnist, "dpkg_files", lambda package: sorted(debian.iterdir()))
    path = debian / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptFileError) as info:
        FashionMNIST(data_dir=str(tmp_path / "data")).load_split(train=False)
    assert info.value.path == path
    assert "apt-get install --reinstall dataset-fashion-mnist" in str(info.value)


def test_missing_file_names_path_and_remedy(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        MNIST(data_dir=str(tmp_path)).load_split(train=False)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz") in message
    assert "download=True" in message


def served_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Tiny MNIST .gz files keyed by their first mirror's URL; MNIST's MD5s point at them."""
    source = tmp_path / "source"
    write_mnist(source)
    payloads = {p.name: p.read_bytes() for p in source.iterdir()}
    md5s = {name: hashlib.md5(data).hexdigest() for name, data in payloads.items()}
    monkeypatch.setattr(MNIST, "md5s", md5s)
    return {MNIST.mirrors[0] + name: data for name, data in payloads.items()}


def test_download_fetches_and_verifies(tmp_path: Path, monkeypatch, serve) -> None:
    requested = serve(served_mnist(tmp_path, monkeypatch))
    dm = MNIST(data_dir=str(tmp_path / "data"), download=True, val_size=8)
    dm.prepare_data()
    assert len(requested) == 4
    assert sorted(p.name for p in dm.raw_dir.iterdir()) == sorted(MNIST.md5s)
    assert len(dm.load_split(train=True)[0]) == N_TRAIN
    dm.prepare_data()
    assert len(requested) == 4  # nothing fetched twice


def test_interrupted_download_leaves_nothing(tmp_path: Path, monkeypatch, serve) -> None:
    serve(served_mnist(tmp_path, monkeypatch), fail_after=2000, exc=KeyboardInterrupt())
    dm = MNIST(data_dir=str(tmp_path / "data"), download=True)
    with pytest.raises(KeyboardInterrupt):
        dm.prepare_data()
    assert list(dm.raw_dir.iterdir()) == []


def test_broken_transfer_and_bad_md5_leave_nothing(tmp_path: Path, monkeypatch, serve) -> None:
    files = served_mnist(tmp_path, monkeypatch)
    serve(files, fail_after=2000)
    dm = MNIST(data_dir=str(tmp_path / "data"), download=True)
    with pytest.raises(RuntimeError, match=r"(?s)ossci-datasets.*reset.*yann\.lecun.*404"):
        dm.prepare_data()
    assert list(dm.raw_dir.iterdir()) == []
    serve({url: data + b"x" for url, data in files.items()})
    with pytest.raises(RuntimeError, match="has MD5"):
        dm.prepare_data()
    assert list(dm.raw_dir.iterdir()) == []


def test_fashion_uses_debian_files_from_dpkg(tmp_path: Path, monkeypatch) -> None:
    debian = tmp_path / "usr" / "share" / "fashion"
    arrays = write_mnist(debian, seed=1)
    listed = [tmp_path / "usr", debian, *sorted(debian.iterdir()), tmp_path / "README.gz"]
    monkeypatch.setattr(mnist, "dpkg_files", lambda package: listed)
    x, _ = FashionMNIST(data_dir=str(tmp_path / "data")).load_split(train=False)
    np.testing.assert_array_equal(x[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    ours = write_mnist(tmp_path / "data" / "FashionMNIST" / "raw", seed=2)
    x, _ = FashionMNIST(data_dir=str(tmp_path / "data")).load_split(train=False)
    np.testing.assert_array_equal(x[:, 0].numpy(), ours["t10k-images-idx3-ubyte"])


def test_fashion_without_dpkg_says_where_to_put_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_files.shutil, "which", lambda name: None)
    assert _files.dpkg_files("dataset-fashion-mnist") == []
    with pytest.raises(FileNotFoundError, match=r"FashionMNIST/raw/train-images-idx3-ubyte\.gz"):
        FashionMNIST(data_dir=str(tmp_path)).load_split(train=True)


def test_dpkg_lookup_of_unknown_package_is_empty() -> None:
    assert _files.dpkg_files("latentzoo-no-such-package") == []


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_reads_the_real_debian_package(tmp_path: Path) -> None:
    assert DEBIAN_DIR / "train-images-idx3-ubyte.gz" in _files.dpkg_files("dataset-fashion-mnist")
    dm = FashionMNIST(data_dir=str(tmp_path), val_size=5000)
    dm.setup()
    assert dm.train_set is not None and dm.val_set is not None and dm.test_set is not None
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55000, 5000, 10000)
    assert torch.cat([dm.train_set.y, dm.val_set.y]).bincount().tolist() == [6000] * 10
    assert dm.test_set.y.bincount().tolist() == [1000] * 10
    assert dm.test_set.x.shape == (10000, 1, 28, 28) and dm.test_set.x.max() == 255
