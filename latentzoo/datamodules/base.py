"""In-memory datamodule base: tensors held whole, batches sliced, floats made on the device.

Every latentzoo data set is small enough to sit in memory as ``uint8`` images (CelebA at 64x64 is
2.5 GB) or as float vectors. A batch is cut from those tensors in one indexing operation instead of
``batch_size`` calls to ``__getitem__`` and a collate, and images stay ``uint8`` until they are on
the device, where :meth:`InMemoryDataModule.on_after_batch_transfer` turns them into floats in
``[0, 1]``, laid out as the model asks (channels-last for a model whose
:class:`~latentzoo.zoo.speed.SpeedSettings` say so). That is what makes the data path several
times faster than a per-sample PIL pipeline (``perf/throughput.py`` measures it).

A batch is always a pair ``(x, y)``: ``x`` is ``(B, C, H, W)`` images or ``(B, D)`` vectors and
``y`` the labels (class indices; for the synthetic set, the true latent code).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.types import EVAL_DATALOADERS, TRAIN_DATALOADERS
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from latentzoo.datamodules.sampler import ResumableSampler

__all__ = ["InMemoryDataModule", "TensorPairDataset", "to_model_input"]


def to_model_input(x: Tensor, memory_format: torch.memory_format = torch.preserve_format) -> Tensor:
    """Data as every model sees it: uint8 images become floats in [0, 1]; floats stay as they are.

    The one conversion rule of latentzoo, used by the datamodules on each batch and by the
    callbacks that read a split's tensors directly. Call it after moving ``x`` to its device.
    ``memory_format`` lays 4-D batches out for the model (``torch.channels_last``: NHWC, in the
    same pass as the conversion to float); other tensors keep their layout.
    """
    layout = memory_format if x.ndim == 4 else torch.preserve_format
    if x.dtype == torch.uint8:
        return x.to(torch.float32, memory_format=layout).div_(255.0)  # (B, C, H, W) in [0, 1]
    return x if layout == torch.preserve_format else x.contiguous(memory_format=layout)


class TensorPairDataset(Dataset[tuple[Tensor, Tensor]]):
    """``(x, y)`` tensors served a whole batch at a time through ``__getitems__``."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        self.x, self.y = x, y
        self._x, self._y = x.numpy(), y.numpy()  # views: no copy

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        # The DataLoader's fetcher calls this with the sampler's whole batch of indices. The gather
        # runs in numpy, single-threaded: torch's parallel gather of a small batch is as fast when
        # the cores are idle, and up to 100x slower when they are busy with the training step.
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(self._x[idx]), torch.from_numpy(self._y[idx])


def _identity_collate(batch: Any) -> Any:
    """The batch is already stacked by ``__getitems__``; module level so workers can pickle it."""
    return batch


class InMemoryDataModule(L.LightningDataModule, abc.ABC):
    """Base of all latentzoo datamodules.

    Subclasses say what their data looks like (:attr:`data_shape`) and how to read one split
    (:meth:`load_split`); this class splits train/val with a fixed seed, builds the loaders and
    converts images to float on the device.

    Args:
        data_dir: Folder that holds (or will hold, with ``download=True``) the data set's files.
        batch_size: Samples per batch on each device (under DDP the global batch is this times the
            number of processes).
        val_size: Samples held out of the training split for validation.
        seed: Seed of the train/val split, so that runs compare on the same validation set.
        num_workers: DataLoader workers. The default 0 is right for in-memory tensors; workers only
            add inter-process copies.
        download: Fetch missing files from the data set's public source.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        val_size: int = 5000,
        seed: int = 0,
        num_workers: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if val_size < 1:
            raise ValueError(f"val_size must be >= 1, got {val_size}")
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.val_size = val_size
        self.seed = seed
        self.num_workers = num_workers
        self.download = download
        self.train_set: TensorPairDataset | None = None
        self.val_set: TensorPairDataset | None = None
        self.test_set: TensorPairDataset | None = None
        self._sampler_state: dict[str, Any] | None = None  # restored, for the next train loader

    @property
    @abc.abstractmethod
    def data_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``(C, H, W)`` or ``(D,)``; the CLI links it to the model."""

    @abc.abstractmethod
    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        """Read the training or the test split as ``(x, y)`` tensors, ``x`` uint8 or float."""

    @override
    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            x, y = self.load_split(train=True)
            if self.val_size >= len(x):
                raise ValueError(
                    f"val_size={self.val_size} leaves no training data: the training split of "
                    f"{type(self).__name__} has {len(x)} samples"
                )
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
            val_idx, train_idx = perm[: self.val_size], perm[self.val_size :]
            self.train_set = TensorPairDataset(x[train_idx], y[train_idx])
            self.val_set = TensorPairDataset(x[val_idx], y[val_idx])
        if stage in (None, "fit"):
            self._check_training_batches()
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = TensorPairDataset(*self.load_split(train=False))

    def _check_training_batches(self) -> None:
        """Refuse a training split too small for one batch per process.

        The training loader drops the last incomplete batch (so every step sees ``batch_size``
        samples), and under DDP each of the ``world`` processes gets ``n // world`` samples
        (:class:`ResumableSampler` drops the remainder so that every rank takes as many steps),
        so such a split would train 0 steps and end as if it had succeeded.
        """
        assert self.train_set is not None
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return  # a callback of a test run reading the training split: nothing will train
        n = len(self.train_set)
        world = self.trainer.world_size if self.trainer is not None else 1
        if n // world >= self.batch_size:
            return
        per_process = f" per process ({world} processes get {n // world} each)"
        raise ValueError(
            f"The training split of {type(self).__name__} has {n} samples after holding out "
            f"val_size={self.val_size}: fewer than one batch of batch_size={self.batch_size}"
            f"{per_process if world > 1 else ''}, so training would run 0 steps. Lower "
            "batch_size or val_size, or train on more data"
        )

    def _loader(
        self, dataset: TensorPairDataset | None, shuffle: bool, sampler: Any = None
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before asking for a loader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle if sampler is None else None,
            sampler=sampler,
            drop_last=shuffle,  # equal-sized training batches; evaluation sees every sample
            num_workers=self.num_workers,
            collate_fn=_identity_collate,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator(),  # the loader's own seed draws leave the global RNG alone
        )

    @override
    def train_dataloader(self) -> TRAIN_DATALOADERS:
        """Shuffled full batches in an order a checkpoint restores (:class:`ResumableSampler`)."""
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        sampler = ResumableSampler(
            self.train_set or [],
            self.batch_size,
            shuffle=True,
            seed=torch.initial_seed() % 2**62,  # follows seed_everything / --seed_everything
            num_replicas=world,
            rank=rank,
        )
        if self._sampler_state is not None:
            sampler.resume(self._sampler_state)
            self._sampler_state = None
        return self._loader(self.train_set, shuffle=True, sampler=sampler)

    def split_tensors(self, split: Literal["train", "val", "test"]) -> tuple[Tensor, Tensor]:
        """The ``(x, y)`` tensors of one split, setting the split up first if needed."""
        if getattr(self, f"{split}_set") is None:
            self.setup("test" if split == "test" else "fit")
        dataset = getattr(self, f"{split}_set")
        return dataset.x, dataset.y

    def sample_inputs(self, n: int, seed: int) -> Tensor:
        """n random training inputs as a model sees them (floats), (n, *data_shape); drawn with
        replacement when the training split is smaller. A prior that starts from data (the
        VampPrior's pseudo-inputs) receives these."""
        x, _ = self.split_tensors("train")
        gen = torch.Generator().manual_seed(seed)
        if len(x) >= n:
            idx = torch.randperm(len(x), generator=gen)[:n]
        else:
            idx = torch.randint(len(x), (n,), generator=gen)
        return to_model_input(x[idx])

    @override
    def val_dataloader(self) -> EVAL_DATALOADERS:
        return self._loader(self.val_set, shuffle=False)

    @override
    def test_dataloader(self) -> EVAL_DATALOADERS:
        return self._loader(self.test_set, shuffle=False)

    @override
    def predict_dataloader(self) -> EVAL_DATALOADERS:
        return self._loader(self.test_set, shuffle=False)

    @override
    def state_dict(self) -> dict[str, Any]:
        """Where the training order stands, saved in every checkpoint (exact resume)."""
        trainer = self.trainer
        sampler = getattr(trainer.train_dataloader, "sampler", None) if trainer else None
        if trainer is None or not isinstance(sampler, ResumableSampler):
            return {}
        taken = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        ended = taken >= trainer.num_training_batches
        return {"train_sampler": sampler.position(taken, ended)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._sampler_state = state_dict.get("train_sampler")

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Floats made on the device, in the layout the model asks for (its
        ``input_memory_format``, as :class:`~latentzoo.zoo.AutoencoderModule` has; else as is)."""
        x, y = batch
        model = self.trainer.lightning_module if self.trainer is not None else None
        memory_format = getattr(model, "input_memory_format", torch.preserve_format)
        return to_model_input(x, memory_format), y
