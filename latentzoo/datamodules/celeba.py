"""CelebA aligned faces (Liu et al., 2015), center-cropped and resized as AE models use them.

Layout, as torchvision leaves it::

    data_dir/celeba/img_align_celeba/000001.jpg ... 202599.jpg   (178x218 JPEGs)
    data_dir/celeba/list_eval_partition.txt                      ("000001.jpg 0" per line)

(the images are those of ``img_align_celeba.zip``; partitions 0, 1, 2 are train, val, test).

Preprocessing follows the protocol of the WAE paper (Tolstikhin et al., 2018) and the models
compared with it: a 140x140 center crop, which keeps the face and drops most of the background,
then an antialiased resize to ``image_size`` (64 by default). FID numbers are only comparable
between runs that share this protocol, so it is fixed here rather than an option.

Decoding 200k JPEGs takes minutes, so each preprocessed split is cached as a uint8 tensor in
``data_dir/celeba/cache_{image_size}_{split}.pt`` (2.5 GB for the training split at 64x64); later
runs load it in seconds and no longer need the JPEGs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm
from typing_extensions import override

from latentzoo.datamodules._files import CorruptFileError, atomic_path, require_file
from latentzoo.datamodules.base import InMemoryDataModule

__all__ = ["CelebA", "preprocess_face"]

RGB = ImageReadMode.RGB
ALIGNED_SIZE = (218, 178)  # (H, W) of every image of img_align_celeba
CROP = 140  # side of the center crop, in pixels of the 178x218 aligned image
TRAIN_PARTITIONS = (0, 1)  # official train + val: the base class carves its own validation set
TEST_PARTITIONS = (2,)
MANUAL_DOWNLOAD = (
    "download img_align_celeba.zip from the official CelebA page "
    "(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, 'Align&Cropped Images') and extract it "
    "to {root}/img_align_celeba/ (so that {root}/img_align_celeba/000001.jpg exists), and put "
    "list_eval_partition.txt (from the 'Eval' folder of the same page) at "
    "{root}/list_eval_partition.txt"
)


def preprocess_face(path: str | Path, image_size: int) -> Tensor:
    """Decode one aligned CelebA JPEG, crop its central 140x140, resize to ``image_size``.

    Returns:
        ``(3, image_size, image_size)`` uint8.

    Raises:
        CorruptFileError: The file is not a complete JPEG or not of the aligned size, 178x218.
            The size is read from the header before decoding, so a damaged header that claims
            65535x65535 pixels allocates nothing.
    """
    data = Path(path).read_bytes()
    remedy = f"extract {path} again from img_align_celeba.zip"
    size = jpeg_size(data)
    if size != ALIGNED_SIZE:
        found = "no readable size" if size is None else f"size {size[1]}x{size[0]}"
        problem = f"has {found} in its JPEG header, expected an aligned CelebA image (178x218)"
        raise CorruptFileError(path, problem, remedy)
    try:
        image = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=RGB)
    except RuntimeError as err:  # libjpeg's errors, truncation included
        raise CorruptFileError(path, f"is not a readable JPEG ({err})", remedy) from err
    image = F.center_crop(image, [CROP, CROP])  # (3, 140, 140)
    return F.resize(image, [image_size, image_size], antialias=True)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's start-of-frame marker, or ``None`` if it has none that
    the marker segments before the image data lead to."""
    i = 2 if data[:2] == b"\xff\xd8" else len(data)  # after the start-of-image marker
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            return height, int.from_bytes(data[i + 7 : i + 9], "big")
        elif marker == 0xDA:  # image data before any frame header
            return None
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _download_with_torchvision(root: Path) -> None:
    """Fetch CelebA from Google Drive with torchvision into ``root/celeba`` (needs ``gdown``)."""
    from torchvision.datasets import CelebA as TorchvisionCelebA

    TorchvisionCelebA(str(root), split="all", target_type=[], download=True)


class CelebA(InMemoryDataModule):
    """CelebA aligned faces, 3 x ``image_size`` x ``image_size``; labels are all 0.

    The training pool is the official train and validation partitions (0 and 1, 182,637 images),
    from which ``val_size`` images are held out with the split seed; the test split is the official
    test partition (2, 19,962 images).

    Args:
        data_dir: Folder holding ``celeba/`` (see the module docstring for its layout).
        batch_size: Samples per batch on each device.
        val_size: Images held out of the training pool for validation.
        seed: Seed of the train/val split.
        num_workers: DataLoader workers (0 is right for in-memory tensors).
        download: Try torchvision's Google Drive downloader for missing files. Drive's quota often
            refuses it; the error then says which files to fetch by hand and where to put them.
        image_size: Side of the output images after the 140x140 center crop; at most 140.
        max_samples: Use only the first ``max_samples`` images of each split, for quick runs. Such
            subsets are sliced from a full cache when one exists and are never cached themselves.
    """

    partition_file: ClassVar[str] = "list_eval_partition.txt"
    image_folder: ClassVar[str] = "img_align_celeba"

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        val_size: int = 5000,
        seed: int = 0,
        num_workers: int = 0,
        download: bool = False,
        image_size: int = 64,
        max_samples: int | None = None,
    ) -> None:
        super().__init__(data_dir, batch_size, val_size, seed, num_workers, download)
        if not 1 <= image_size <= CROP:
            raise ValueError(
                f"image_size must be in [1, {CROP}] (the center crop is {CROP}x{CROP}), "
                f"got {image_size}"
            )
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        self.image_size = image_size
        self.max_samples = max_samples

    @property
    @override
    def data_shape(self) -> tuple[int, ...]:
        return (3, self.image_size, self.image_size)

    @property
    def root(self) -> Path:
        """``data_dir/celeba``."""
        return Path(self.data_dir) / "celeba"

    def cache_path(self, train: bool) -> Path:
        """Where the preprocessed split is cached."""
        return self.root / f"cache_{self.image_size}_{'train' if train else 'test'}.pt"

    def _sources_present(self) -> bool:
        return (self.root / self.partition_file).is_file() and (
            self.root / self.image_folder
        ).is_dir()

    @override
    def prepare_data(self) -> None:
        cached = all(self.cache_path(t).is_file() for t in (True, False))
        if not self.download or cached or self._sources_present():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".celeba-download.", dir=self.root))
        try:
            _download_with_torchvision(tmp)
            for name in (self.image_folder, self.partition_file):
                if not (self.root / name).exists():
                    os.replace(tmp / "celeba" / name, self.root / name)
        except Exception as err:
            raise RuntimeError(
                f"Downloading CelebA failed ({type(err).__name__}: {err}). Instead, "
                + MANUAL_DOWNLOAD.format(root=self.root)
            ) from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _split_files(self, train: bool) -> list[Path]:
        hint = MANUAL_DOWNLOAD.format(root=self.root)
        partition_path = require_file(self.root / self.partition_file, hint)
        wanted = TRAIN_PARTITIONS if train else TEST_PARTITIONS
        names = [name for name, part in self._partitions(partition_path) if part in wanted]
        if self.max_samples is not None:
            names = names[: self.max_samples]
        folder = self.root / self.image_folder
        paths = [folder / name for name in names]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(paths)} images listed in {partition_path} are "
                f"missing, e.g. {missing[0]}: " + hint
            )
        return paths

    def _partitions(self, path: Path) -> list[tuple[str, int]]:
        """The ``(image file name, partition)`` pairs of ``list_eval_partition.txt``."""
        remedy = "replace it with the official list_eval_partition.txt"
        try:
            lines = path.read_text(encoding="ascii").splitlines()
        except UnicodeDecodeError as err:
            raise CorruptFileError(path, f"is not a text file ({err})", remedy) from err
        pairs = []
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2") or "/" in fields[0]:
                raise CorruptFileError(
                    path, f"line {number}: expected '<image>.jpg <0|1|2>', got {line!r}", remedy
                )
            pairs.append((fields[0], int(fields[1])))
        return pairs

    def _preprocess(self, paths: list[Path], split: str) -> Tensor:
        x = torch.empty((len(paths), *self.data_shape), dtype=torch.uint8)  # (N, 3, S, S)
        workers = min(8, os.cpu_count() or 1)  # decoding releases the GIL
        with ThreadPoolExecutor(workers) as pool:
            images = pool.map(preprocess_face, paths, [self.image_size] * len(paths))
            desc = f"CelebA {split} {self.image_size}px"
            for i, image in enumerate(tqdm(images, total=len(paths), desc=desc, unit="img")):
                x[i] = image
        return x

    def _load_cache(self, path: Path) -> Tensor:
        try:
            x = torch.load(path, weights_only=True)
        # torch.load of a damaged zip or pickle fails in many ways; all mean "rebuild it".
        except Exception as err:
            raise CorruptFileError(
                path, f"is unreadable ({type(err).__name__})", "delete it to rebuild the cache"
            ) from err
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.shape[1:] != self.data_shape:
            raise CorruptFileError(
                path,
                f"does not hold uint8 images of shape (N, *{self.data_shape})",
                "delete it to rebuild the cache",
            )
        return x

    @override
    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        cache = self.cache_path(train)
        if cache.is_file():
            x = self._load_cache(cache)
            if self.max_samples is not None:
                x = x[: self.max_samples].clone()  # a view would keep the whole cache alive
        else:
            if self.download:
                self.prepare_data()  # idempotent; covers setup() called without prepare_data()
            x = self._preprocess(self._split_files(train), "train" if train else "test")
            if self.max_samples is None:
                with atomic_path(cache) as tmp:
                    torch.save(x, tmp)
        return x, torch.zeros(len(x), dtype=torch.long)
