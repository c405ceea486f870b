"""The training order as state: a sampler that a checkpoint can put back exactly where it was.

``kill -9`` in the middle of an epoch, then ``--ckpt_path last``, must continue with the batch the
interrupted run would have drawn next, in the same order, or the resumed run is another run.
:class:`ResumableSampler` therefore draws epoch ``e``'s order from ``seed`` and ``e`` alone (its own
generator, never the global RNG), counts the batches the training loop has *taken* (not the ones
Lightning's fetcher pre-fetched), and saves both; loading them makes the next pass start at the
epoch and batch that were next.

It is a :class:`~torch.utils.data.DistributedSampler`, sharded by the trainer's rank and world
size, so Lightning keeps it under DDP instead of wrapping it (and losing its state). Its epoch
comes from its own count of passes, which the checkpoint restores; Lightning's ``set_epoch`` call
at the start of a resumed epoch comes after the first batch is fetched, so it is not relied on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DistributedSampler
from typing_extensions import override

__all__ = ["ResumableSampler"]


class ResumableSampler(DistributedSampler):
    """Indices of one rank's share of an epoch, seeded by ``(seed, epoch)``, resumable by batch.

    Args:
        dataset: Anything with a length.
        batch_size: Samples per batch; what is skipped on resume is whole batches.
        shuffle: A new permutation per epoch (training); else ``0..n-1``.
        seed: Seed of the permutations, the same on every rank.
        num_replicas: World size (1 without DDP).
        rank: This process's rank.
        drop_last: Drop the tail that would make ranks' shares unequal (as DistributedSampler).
    """

    def __init__(
        self,
        dataset: Sized,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.batch_size = batch_size
        self.next_epoch = 0  # the epoch the next pass draws
        self._skip = 0  # batches the next pass leaves out (set by resume)

    @override
    def set_epoch(self, epoch: int) -> None:
        """Ignored: the epoch is this sampler's own count of passes (see the module docstring)."""

    @override
    def __iter__(self) -> Iterator[int]:
        self.epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        skip, self._skip = self._skip, 0
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        order = order[: self.total_size] if self.drop_last else order.repeat(2)[: self.total_size]
        mine = order[self.rank : self.total_size : self.num_replicas]  # (num_samples,)
        return iter(mine[skip * self.batch_size :].tolist())

    def position(self, batches_taken: int, pass_ended: bool) -> dict[str, Any]:
        """The state to save: the current pass's epoch and how far the training loop got."""
        return {
            "epoch": self.epoch,
            "batches_taken": batches_taken,
            "pass_ended": pass_ended,
            "seed": self.seed,
        }

    def resume(self, state: dict[str, Any]) -> None:
        """Make the next pass continue a saved one, or start the epoch after it if it had ended."""
        epoch, taken = int(state["epoch"]), int(state["batches_taken"])
        if state.get("pass_ended", False):
            epoch, taken = epoch + 1, 0
        self.seed = int(state.get("seed", self.seed))
        self.epoch = self.next_epoch = epoch
        self._skip = taken
