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
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm
from typing_extensions import override

from latentzoo.datamodules._files import atomic_path, require_file
from latentzoo.datamodules.base import InMemoryDataModule

__all__ = ["CelebA", "preprocess_face"]

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
    """
    image = decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB)  # (3, 218, 178)
    image = F.center_crop(image, [CROP, CROP])
    return F.resize(image, [image_size, image_size], antialias=True)


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
        names = []
        for number, line in enumerate(partition_path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].isdigit():
                raise ValueError(
                    f"{partition_path}, line {number}: expected '<image>.jpg <0|1|2>', got "
                    f"{line!r}; replace the file with the official list_eval_partition.txt"
                )
            if int(fields[1]) in wanted:
                names.append(fields[0])
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
        except Exception as err:
            raise ValueError(
                f"Cache {path} is unreadable ({type(err).__name__}); delete it to rebuild"
            ) from err
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.shape[1:] != self.data_shape:
            raise ValueError(
                f"Cache {path} does not hold uint8 images of shape (N, *{self.data_shape}); "
                "delete it to rebuild"
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
