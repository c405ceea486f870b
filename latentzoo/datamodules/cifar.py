"""CIFAR-10 read from its "python version" pickles (Krizhevsky, 2009).

Layout, as torchvision and the official tarball ``cifar-10-python.tar.gz`` leave it::

    data_dir/cifar-10-batches-py/data_batch_1 ... data_batch_5   (10,000 images each)
    data_dir/cifar-10-batches-py/test_batch                      (10,000 images)

Each file is a Python 2 pickle of a dict whose ``b"data"`` is a ``(10000, 3072)`` uint8 array, one
image per row as 1024 red, then 1024 green, then 1024 blue values in row-major order (so a reshape
to ``(N, 3, 32, 32)`` is exact), and whose ``b"labels"`` is a list of class indices in ``[0, 10)``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from latentzoo.datamodules._files import download_url, extract_archive, md5sum, require_file
from latentzoo.datamodules.base import InMemoryDataModule

__all__ = ["CIFAR10", "read_cifar_batch"]

# What a CIFAR pickle may reference: numpy's array reconstruction and, for pickles written by
# Python 3 at protocol 2, the codec that rebuilds their bytes. Anything else is refused, so a
# tampered file cannot run code when it is loaded.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file as ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``.

    Raises:
        ValueError: The file is truncated or not a CIFAR batch (missing keys, wrong row length,
            labels not matching the images). The message names the file.
    """
    path = Path(path)
    redo = f"delete {path.parent} and extract or download the data set again"
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a readable CIFAR batch pickle ({err}); {redo}") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path} lacks the keys b'data' and b'labels' (found {keys}); {redo}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path} holds data of shape {data.shape} and dtype {data.dtype}, expected "
            f"(N, 3072) uint8; {redo}"
        )
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
        raise ValueError(
            f"{path} holds {labels.size} labels for {len(data)} images, or labels outside "
            f"[0, 10); {redo}"
        )
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
