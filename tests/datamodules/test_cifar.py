"""CIFAR-10 on tiny batch pickles written like the originals (protocol 2, bytes keys)."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import tarfile
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from latentzoo.datamodules import _files
from latentzoo.datamodules._files import CorruptFileError
from latentzoo.datamodules.cifar import CIFAR10, read_cifar_batch

PER_BATCH, N_TEST = 6, 7


def write_batch(path: Path, data: np.ndarray, labels: list[int], **extra: object) -> None:
    batch = {b"batch_label": b"training batch", b"data": data, b"labels": labels, **extra}
    batch[b"filenames"] = [f"img_{i}.png".encode() for i in range(len(data))]
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_cifar(root: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write the six batch files of a small CIFAR-10; train row ``i`` starts with ``i``."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = N_TEST if name == "test_batch" else PER_BATCH
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        data[:, 0] = np.arange(n) + k * PER_BATCH
        labels = rng.integers(0, 10, size=n).tolist()
        write_batch(folder / name, data, labels)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10}, f, protocol=2)
    return written


def test_pixels_labels_and_channel_order(tmp_path: Path) -> None:
    written = write_cifar(tmp_path)
    dm = CIFAR10(data_dir=str(tmp_path), val_size=5)
    x, y = dm.load_split(train=True)
    assert x.dtype == torch.uint8 and x.shape == (5 * PER_BATCH, 3, 32, 32)
    assert y.dtype == torch.int64
    data = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = [label for i in range(1, 6) for label in written[f"data_batch_{i}"][1]]
    assert y.tolist() == labels
    i, h, w = 7, 5, 30  # red plane first, then green, then blue, each row-major
    assert [int(x[i, c, h, w]) for c in range(3)] == [
        int(data[i, c * 1024 + h * 32 + w]) for c in range(3)
    ]
    np.testing.assert_array_equal(x.reshape(len(x), -1).numpy(), data)
    x_test, y_test = dm.load_split(train=False)
    np.testing.assert_array_equal(x_test.reshape(N_TEST, -1).numpy(), written["test_batch"][0])
    assert y_test.tolist() == written["test_batch"][1]


def test_split_and_loader_batches(tmp_path: Path, check_loaders) -> None:
    write_cifar(tmp_path)
    dm = CIFAR10(data_dir=str(tmp_path), val_size=4, batch_size=3, seed=3)
    check_loaders(dm, 3)
    assert dm.train_set is not None and dm.val_set is not None
    ids = dm.train_set.x[:, 0, 0, 0].tolist() + dm.val_set.x[:, 0, 0, 0].tolist()
    assert sorted(ids) == list(range(5 * PER_BATCH))
    again = CIFAR10(data_dir=str(tmp_path), val_size=4, batch_size=3, seed=3)
    again.setup("fit")
    assert again.val_set is not None and torch.equal(again.val_set.x, dm.val_set.x)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({b"labels": [0, 1]}, "lacks the keys"),
        ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, r"shape \(2, 3000\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, r"outside \[0, 10\)"),
    ],
)
def test_malformed_batch_names_the_file(tmp_path: Path, batch: dict, message: str) -> None:
    write_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(ValueError, match=f"data_batch_3.*{message}"):
        CIFAR10(data_dir=str(tmp_path)).load_split(train=True)


def test_truncated_and_hostile_pickles_are_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="test_batch is not a readable CIFAR batch"):
        CIFAR10(data_dir=str(tmp_path)).load_split(train=False)
    marker = tmp_path / "pwned"

    class Hostile:
        def __reduce__(self) -> tuple:
            return os.system, (f"touch {marker}",)  # plain pickle.load would run this

    with open(path, "wb") as f:
        pickle.dump({b"data": Hostile()}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing to load"):
        CIFAR10(data_dir=str(tmp_path)).load_split(train=False)
    assert not marker.exists()


def test_damaged_batches_are_refused_by_name(
    tmp_path: Path, damaged_copies, load_or_refuse
) -> None:
    """400 damaged versions of a batch pickle: each is refused naming it, or, where a flipped bit
    fell in a pixel, a label or a file name, loads with at most that one value changed."""
    written = write_cifar(tmp_path)
    data, labels = written["test_batch"]
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    outcomes: Counter[tuple[str, str]] = Counter()
    for kind, damaged in damaged_copies(path.read_bytes(), 400, seed=0, header=64):
        path.write_bytes(damaged)
        result = load_or_refuse(path, lambda: read_cifar_batch(path))
        if isinstance(result, CorruptFileError):
            outcomes[kind, "refused"] += 1
            continue
        x, y = result
        changed = (x.reshape(N_TEST, -1) != data).sum() + (y != labels).sum()
        assert changed <= 1, f"{kind} loaded with {changed} values changed"
        outcomes[kind, "loaded"] += 1
    assert outcomes["truncated", "refused"] == outcomes["random bytes", "refused"] == 100
    assert outcomes["bit flip", "loaded"] > 50  # most of the file is pixels


def pickle_ops(*ops: bytes) -> bytes:
    return b"\x80\x02" + b"".join(ops) + b"."  # protocol 2 ... STOP


HUGE_PICKLES = {
    # LONG_BINPUT at memo index 2**31: the C unpickler grows its memo array to 16 GB
    "memo index": pickle_ops(b"}", b"r" + struct.pack("<I", 2**31)),
    # BINSTRING claiming 2 GB: read from the file object, it is allocated before the read
    "string length": pickle_ops(b"T" + struct.pack("<i", 2**31 - 1), b"abc"),
    # numpy.ndarray((2**40,)) called directly
    "ndarray call": pickle_ops(b"cnumpy\nndarray\n", b"J" + struct.pack("<i", 2**30), b"\x85R"),
    # _reconstruct(ndarray, (2**30,), b"b"): the skeleton is allocated at the claimed shape
    "skeleton shape": pickle_ops(
        b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n",
        b"J" + struct.pack("<i", 2**30), b"\x85", b"U\x01b", b"\x87R",
    ),
    # an object array's __setstate__ allocates its claimed shape before reading the list
    "object dtype": pickle_ops(b"cnumpy\ndtype\n", b"U\x02O8", b"\x85R"),
}  # fmt: skip


@pytest.mark.parametrize("case", HUGE_PICKLES, ids=str)
def test_pickle_claiming_gigabytes_allocates_nothing(tmp_path: Path, case: str) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(HUGE_PICKLES[case])
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError) as info:
            read_cifar_batch(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.path == path and str(path.parent) in info.value.remedy
    assert peak < 2**22, f"{peak} bytes allocated"


def test_missing_batch_names_path_and_remedy(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError) as info:
        CIFAR10(data_dir=str(tmp_path)).load_split(train=True)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_4") in str(info.value)
    assert "download=True" in str(info.value)


def make_tarball(tmp_path: Path) -> bytes:
    write_cifar(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive.read_bytes()


def test_download_extracts_atomically(tmp_path: Path, monkeypatch, serve) -> None:
    payload = make_tarball(tmp_path)
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(payload).hexdigest())
    serve({CIFAR10.url: payload})
    data = tmp_path / "data"
    dm = CIFAR10(data_dir=str(data), download=True, val_size=5)
    dm.prepare_data()
    assert sorted(p.name for p in data.iterdir()) == [CIFAR10.folder, "cifar-10-python.tar.gz"]
    assert len(dm.load_split(train=False)[0]) == N_TEST


def test_interrupted_download_leaves_nothing(tmp_path: Path, monkeypatch, serve) -> None:
    payload = make_tarball(tmp_path)
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(payload).hexdigest())
    serve({CIFAR10.url: payload}, fail_after=3000)
    data = tmp_path / "data"
    with pytest.raises(ConnectionResetError):
        CIFAR10(data_dir=str(data), download=True).prepare_data()
    assert list(data.iterdir()) == []


def test_damaged_archive_extracts_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(make_tarball(tmp_path)[:-2000])
    with pytest.raises(ValueError, match=r"cifar-10-python\.tar\.gz is damaged"):
        _files.extract_archive(archive, tmp_path / "out" / "cifar-10-batches-py")
    assert list((tmp_path / "out").iterdir()) == []


def test_damaged_archives_are_refused_by_name(
    tmp_path: Path, damaged_copies, load_or_refuse
) -> None:
    """A damaged tarball is refused naming it and leaves nothing, or extracts complete batches."""
    valid = make_tarball(tmp_path)
    archive = tmp_path / "cifar-10-python.tar.gz"
    outcomes: Counter[str] = Counter()
    for i, (_kind, damaged) in enumerate(damaged_copies(valid, 120, seed=1, header=32)):
        archive.write_bytes(damaged)
        out = tmp_path / f"out{i}"
        result = load_or_refuse(
            archive,
            lambda: _files.extract_archive(archive, out / CIFAR10.folder),  # noqa: B023
        )
        if isinstance(result, CorruptFileError):
            assert not out.exists() or list(out.iterdir()) == []
            outcomes["refused"] += 1
        else:
            x, _ = CIFAR10(data_dir=str(out)).load_split(train=False)
            assert x.shape == (N_TEST, 3, 32, 32)
            outcomes["extracted"] += 1
    assert outcomes["refused"] >= 60  # every cut and random copy at least


def test_partial_folder_is_not_merged_into(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="lacks test_batch; delete the folder"):
        CIFAR10(data_dir=str(tmp_path), download=True).prepare_data()


def test_wrong_archive_on_disk_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not the release")
    with pytest.raises(ValueError, match=r"cifar-10-python\.tar\.gz is not the CIFAR-10 release"):
        CIFAR10(data_dir=str(tmp_path), download=True).prepare_data()
    assert not (tmp_path / CIFAR10.folder).exists()
