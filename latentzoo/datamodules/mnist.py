"""MNIST and Fashion-MNIST read from their IDX files (LeCun et al., 1998; Xiao et al., 2017).

Files sit in torchvision's layout, so a folder that torchvision already filled is reused::

    data_dir/MNIST/raw/train-images-idx3-ubyte.gz     (or the same name without .gz)
    data_dir/MNIST/raw/train-labels-idx1-ubyte.gz
    data_dir/MNIST/raw/t10k-images-idx3-ubyte.gz
    data_dir/MNIST/raw/t10k-labels-idx1-ubyte.gz

(``FashionMNIST/raw/`` for Fashion-MNIST). The IDX format is a big-endian header, the magic number
``0x0000TTNN`` (type ``TT`` 0x08 = uint8, ``NN`` dimensions) followed by one int32 per dimension,
then the row-major payload: 2051 for an ``(N, 28, 28)`` image file, 2049 for an ``(N,)`` label file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from latentzoo.datamodules._files import (
    CorruptFileError,
    download_from_mirrors,
    dpkg_files,
    read_at_most,
    require_file,
)
from latentzoo.datamodules.base import InMemoryDataModule

__all__ = ["MNIST", "FashionMNIST", "read_idx"]

IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension


def read_idx(path: str | Path, magic: int, remedy: str | None = None) -> np.ndarray:
    """Read an IDX file, gzipped (``.gz``) or not, into a uint8 array of the header's shape.

    The payload is read in chunks up to the size the header claims, so a damaged header that
    claims terabytes costs no more memory than the file holds.

    Args:
        path: The IDX file.
        magic: The magic number the file must carry (:data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`).
        remedy: What the error tells the user to do; by default, delete the file and download it.

    Raises:
        CorruptFileError: The file is truncated or too long, not gzip though named ``.gz``, or its
            header is not ``magic`` or does not match the payload's length.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            header = read_at_most(f, 4 * (1 + (magic & 0xFF)))
            shape = _idx_shape(path, header, magic, remedy)
            size = math.prod(shape)
            payload = read_at_most(f, size + 1)  # one byte more, to see trailing garbage
    # gzip reports a damaged stream as BadGzipFile (bad header, CRC), EOFError or zlib.error.
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise CorruptFileError(path, f"is not a complete gzip file ({err})", remedy) from err
    expected = len(header) + size
    if len(payload) < size:
        problem = f"holds {len(header) + len(payload)} bytes but its header {shape} says {expected}"
        raise CorruptFileError(path, problem, remedy)
    if len(payload) > size:
        problem = f"holds more than the {expected} bytes that its header {shape} says"
        raise CorruptFileError(path, problem, remedy)
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def _idx_shape(path: Path, header: bytes, magic: int, remedy: str | None) -> tuple[int, ...]:
    """The shape an IDX header declares, after checking its magic number and dimensions."""
    found = int.from_bytes(header[:4], "big")
    if len(header) >= 4 and found != magic:
        raise CorruptFileError(path, f"has IDX magic number {found}, expected {magic}", remedy)
    ndim = magic & 0xFF
    if len(header) < 4 * (1 + ndim):
        raise CorruptFileError(
            path, f"is too short for an IDX header ({len(header)} bytes)", remedy
        )
    shape = tuple(int.from_bytes(header[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1))
    if any(d >= 2**31 for d in shape):  # the format's dimensions are signed int32
        raise CorruptFileError(path, f"has negative dimensions in its IDX header {shape}", remedy)
    return shape


class MNIST(InMemoryDataModule):
    """MNIST handwritten digits: 60,000 training and 10,000 test images, 1x28x28, 10 classes.

    Takes the arguments of :class:`~latentzoo.datamodules.base.InMemoryDataModule`; with
    ``download=True``, missing IDX files are fetched from the mirrors torchvision uses and checked
    against their MD5.
    """

    folder: ClassVar[str] = "MNIST"
    mirrors: ClassVar[tuple[str, ...]] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    md5s: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    num_classes: ClassVar[int] = 10

    @property
    @override
    def data_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    @property
    def raw_dir(self) -> Path:
        """Where the IDX files are looked for first and downloaded to."""
        return Path(self.data_dir) / self.folder / "raw"

    def extra_dirs(self) -> list[Path]:
        """Folders searched after :attr:`raw_dir`, for copies installed outside ``data_dir``."""
        return []

    def find(self, filename: str) -> Path | None:
        """The first existing copy of ``filename`` (``.gz`` or uncompressed), or ``None``."""
        for folder in [self.raw_dir, *self.extra_dirs()]:
            for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
                if candidate.is_file():
                    return candidate
        return None

    @override
    def prepare_data(self) -> None:
        if not self.download:
            return
        for filename, md5 in self.md5s.items():
            if self.find(filename) is None:
                download_from_mirrors(filename, self.mirrors, self.raw_dir / filename, md5)

    def remedy(self, path: Path) -> str:
        """What to do about a damaged copy of ``path``: delete it and fetch it again."""
        return f"delete {path} and download it again (download=True fetches it)"

    def _path(self, filename: str) -> Path:
        if self.download:
            self.prepare_data()  # idempotent; covers setup() called without prepare_data()
        found = self.find(filename)
        if found is not None:
            return found
        places = ", ".join(str(d) for d in [self.raw_dir, *self.extra_dirs()])
        return require_file(
            self.raw_dir / filename,
            f"pass download=True to fetch it, or put {filename} (gzipped or not) in one of: "
            f"{places}",
        )

    @override
    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        prefix = "train" if train else "t10k"
        images_path = self._path(f"{prefix}-images-idx3-ubyte.gz")
        labels_path = self._path(f"{prefix}-labels-idx1-ubyte.gz")
        images = read_idx(images_path, IMAGES_MAGIC, self.remedy(images_path))
        labels = read_idx(labels_path, LABELS_MAGIC, self.remedy(labels_path))
        if images.shape[1:] != self.data_shape[1:]:
            raise CorruptFileError(
                images_path,
                f"holds images of {images.shape[1:]}, expected {self.data_shape[1:]}: it is not "
                f"a {type(self).__name__} file",
                self.remedy(images_path),
            )
        if labels.size and labels.max() >= self.num_classes:
            raise CorruptFileError(
                labels_path,
                f"holds label {labels.max()}, outside [0, {self.num_classes})",
                self.remedy(labels_path),
            )
        if len(images) != len(labels):
            raise CorruptFileError(
                labels_path,
                f"has {len(labels)} labels but {images_path} has {len(images)} images: the two "
                "files come from different releases",
                "delete both and download them again",
            )
        x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28) uint8
        y = torch.from_numpy(labels.astype(np.int64))  # (N,)
        return x, y


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando articles): same format and sizes as MNIST, 10 clothing classes.

    Besides ``data_dir/FashionMNIST/raw/``, the files of Debian's package ``dataset-fashion-mnist``
    are used when it is installed (its folder is asked of ``dpkg -L``), so no download is needed
    there. Debian recompresses the ``.gz`` files, so their MD5 differs from the upstream one; the
    IDX header checks still apply.
    """

    folder: ClassVar[str] = "FashionMNIST"
    mirrors: ClassVar[tuple[str, ...]] = (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    )
    md5s: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    debian_package: ClassVar[str] = "dataset-fashion-mnist"

    @override
    def extra_dirs(self) -> list[Path]:
        files = [f for f in dpkg_files(self.debian_package) if f.name in self.md5s]
        return list(dict.fromkeys(f.parent for f in files))

    @override
    def remedy(self, path: Path) -> str:
        if path.parent in self.extra_dirs():
            return f"reinstall it: apt-get install --reinstall {self.debian_package}"
        return super().remedy(path)
