"""CIFAR-10 read from its "python version" pickles (Krizhevsky, 2009).

Layout, as torchvision and the official tarball ``cifar-10-python.tar.gz`` leave it::

    data_dir/cifar-10-batches-py/data_batch_1 ... data_batch_5   (10,000 images each)
    data_dir/cifar-10-batches-py/test_batch                      (10,000 images)

Each file is a Python 2 pickle of a dict whose ``b"data"`` is a ``(10000, 3072)`` uint8 array, one
image per row as 1024 red, then 1024 green, then 1024 blue values in row-major order (so a reshape
to ``(N, 3, 32, 32)`` is exact), and whose ``b"labels"`` is a list of class indices in ``[0, 10)``.
"""

from __future__ import annotations

import codecs
import io
import pickle
import reprlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from latentzoo.datamodules._files import (
    CorruptFileError,
    download_url,
    extract_archive,
    md5sum,
    require_file,
)
from latentzoo.datamodules.base import InMemoryDataModule

__all__ = ["CIFAR10", "read_cifar_batch"]


class _NdarrayClass:
    """Stands for ``numpy.ndarray`` in a pickle: ``_reconstruct`` may take it as an argument, but
    calling it, as ``ndarray((10**12,))`` in a damaged file would, is refused."""


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct``, which pickles always call with shape ``(0,)``: the data follow in
    ``__setstate__``, whose length numpy checks against the declared shape. A damaged file asking
    for another shape would make numpy allocate that shape first."""
    if cls is not _NdarrayClass:
        raise pickle.UnpicklingError(f"array skeleton of class {cls!r}, expected numpy.ndarray")
    if not isinstance(shape, tuple) or shape != (0,):
        raise pickle.UnpicklingError(f"array skeleton of shape {shape!r}, expected (0,)")
    return np.ndarray(shape, dtype)  # empty; __setstate__ fills it


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` without object fields: an object array's ``__setstate__`` allocates the
    shape the file claims before it looks at the data."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"array of dtype {dtype} holds Python objects")
    return dtype


# What a CIFAR pickle may reference: numpy's array reconstruction (guarded as above) and, for
# pickles written by Python 3 at protocol 2, the codec that rebuilds their bytes. Anything else is
# refused, so a tampered file cannot run code when it is loaded.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NdarrayClass,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayUnpickler(pickle._Unpickler):
    """The pure-Python unpickler: it keeps its memo in a dict, where the C one grows an array to
    the largest memo index in the file, so that 4 damaged bytes can ask for 32 GB."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return _ALLOWED_GLOBALS[module, name]


def _unpickle(path: Path, remedy: str) -> Any:
    """Unpickle ``path`` from memory, where a length field that claims more than the file holds
    fails as truncated instead of asking the file object for that many bytes."""
    data = path.read_bytes()
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    # Unpickling damaged bytes can raise nearly anything (UnpicklingError, EOFError, ValueError,
    # KeyError, IndexError, TypeError, OverflowError, ...): all of them mean a damaged file.
    except Exception as err:
        reason = f"{type(err).__name__}: {str(err) or 'the data end too early'}"
        raise CorruptFileError(
            path, f"is not a readable CIFAR batch pickle ({reason})", remedy
        ) from err


def _labels(labels: Any) -> np.ndarray | None:
    """Class indices as ``(N,)`` int64 if ``labels`` is a list (or 1-d integer array) of integers
    in ``[0, 10)``, else ``None``."""
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(type(v) is int and 0 <= v < 10 for v in labels):
        return None
    return np.asarray(labels, dtype=np.int64)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file as ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``.

    Raises:
        CorruptFileError: The file is truncated or not a CIFAR batch (missing keys, wrong row
            length, labels not matching the images).
    """
    path = Path(path)
    remedy = f"delete {path.parent} and extract or download the data set again"
    batch = _unpickle(path, remedy)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        found = reprlib.repr(list(batch)) if isinstance(batch, dict) else type(batch).__name__
        problem = f"lacks the keys b'data' and b'labels' (found {found})"
        raise CorruptFileError(path, problem, remedy)
    data, labels = batch[b"data"], batch[b"labels"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * 32 * 32
    ):
        shape, dtype = getattr(data, "shape", None), getattr(data, "dtype", type(data).__name__)
        raise CorruptFileError(
            path, f"holds data of shape {shape} and dtype {dtype}, expected (N, 3072) uint8", remedy
        )
    labels = _labels(labels)
    if labels is None:
        raise CorruptFileError(
            path, "holds labels that are not integers or lie outside [0, 10)", remedy
        )
    if len(labels) != len(data):
        raise CorruptFileError(path, f"holds {len(labels)} labels for {len(data)} images", remedy)
    return data.reshape(-1, 3, 32, 32), labels


class CIFAR10(InMemoryDataModule):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 3x32x32, 10 classes.

    Takes the arguments of :class:`~latentzoo.datamodules.base.InMemoryDataModule`. With
    ``download=True`` the official tarball (163 MB) is fetched to ``data_dir``, checked against its
    MD5 and extracted; both steps are atomic, so an interrupted run leaves no partial folder.
    """

    folder: ClassVar[str] = "cifar-10-batches-py"
    url: ClassVar[str] = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    tgz_md5: ClassVar[str] = "c58f30108f718f92721af3b95e74349a"
    train_files: ClassVar[tuple[str, ...]] = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files: ClassVar[tuple[str, ...]] = ("test_batch",)
    num_classes: ClassVar[int] = 10

    @property
    @override
    def data_shape(self) -> tuple[int, ...]:
        return (3, 32, 32)

    @property
    def root(self) -> Path:
        """The folder holding the batch files."""
        return Path(self.data_dir) / self.folder

    def _missing(self) -> list[str]:
        return [f for f in self.train_files + self.test_files if not (self.root / f).is_file()]

    @override
    def prepare_data(self) -> None:
        if not self.download or not self._missing():
            return
        if self.root.exists():
            raise FileNotFoundError(
                f"{self.root} exists but lacks {', '.join(self._missing())}; delete the folder "
                "so that download=True can extract the data set again"
            )
        archive = Path(self.data_dir) / Path(self.url).name
        if not archive.is_file():
            download_url(self.url, archive, self.tgz_md5)
        elif md5sum(archive) != self.tgz_md5:
            raise ValueError(
                f"{archive} is not the CIFAR-10 release (MD5 {md5sum(archive)}, expected "
                f"{self.tgz_md5}); delete it so that download=True fetches it again"
            )
        extract_archive(archive, self.root)

    @override
    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        if self.download:
            self.prepare_data()  # idempotent; covers setup() called without prepare_data()
        hint = (
            f"pass download=True, or extract {Path(self.url).name} ({self.url}) into "
            f"{self.data_dir} so that the folder {self.root} holds the batch files"
        )
        parts = [
            read_cifar_batch(require_file(self.root / name, hint))
            for name in (self.train_files if train else self.test_files)
        ]
        x = torch.from_numpy(np.concatenate([images for images, _ in parts]))  # (N, 3, 32, 32)
        y = torch.from_numpy(np.concatenate([labels for _, labels in parts]))  # (N,)
        return x, y
