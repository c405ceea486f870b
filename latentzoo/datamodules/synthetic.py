"""Synthetic data with a known true latent dimension (LMGAE paper, section 5.1).

Mondal et al., "Towards Latent Space Optimality for Auto-Encoder Based Generative Models":
z ~ N(0, I_n) and x = f(z), with f a fixed, randomly initialised two-layer leaky-ReLU MLP of
128 units per layer and output dimension d. The data lie on an n-dimensional manifold in R^d, so
a model's latent dimension m can be compared against the true n.

f is drawn from ``seed`` and so is every split, so two runs with the same arguments see the same
numbers. The outputs are standardised per coordinate with the training split's mean and standard
deviation (a random MLP's raw outputs have an arbitrary scale that would leak into every loss).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from typing_extensions import override

from latentzoo.datamodules.base import InMemoryDataModule

__all__ = ["Synthetic", "random_mlp"]


def random_mlp(
    latent_dim: int, data_dim: int, hidden: int, generator: torch.Generator
) -> nn.Module:
    """The fixed generator f: Linear-LeakyReLU-Linear-LeakyReLU-Linear, weights from ``generator``.

    Kaiming-normal weights for leaky ReLU keep the activations' scale from layer to layer, so no
    layer collapses to its linear part or saturates.
    """
    f = nn.Sequential(
        nn.Linear(latent_dim, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, data_dim),
    )
    with torch.no_grad():
        for layer in f:
            if isinstance(layer, nn.Linear):
                fan_in = layer.weight.shape[1]
                std = (2.0 / ((1 + 0.2**2) * fan_in)) ** 0.5
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.1)
    return f.requires_grad_(False)


class Synthetic(InMemoryDataModule):
    """x = f(z), z ~ N(0, I_n): vectors of dimension ``data_dim`` with true latent dimension n.

    A batch is ``(x, z)``: the data and the true latent code that made it.

    Args:
        latent_dim: The true latent dimension n.
        data_dim: The data dimension d.
        hidden: Units per hidden layer of f (128 in the paper).
        num_train: Size of the training pool (validation is carved out of it: more than
            ``val_size``).
        num_test: Size of the test split.
        data_dir: Unused (the data are generated); kept so every datamodule takes the same args.
        batch_size: See :class:`InMemoryDataModule`.
        val_size: See :class:`InMemoryDataModule`.
        seed: Draws f, the samples and the train/val split.
        num_workers: See :class:`InMemoryDataModule`.
        download: Unused.
    """

    def __init__(
        self,
        latent_dim: int = 8,
        data_dim: int = 128,
        hidden: int = 128,
        num_train: int = 20000,
        num_test: int = 5000,
        data_dir: str = "data",
        batch_size: int = 128,
        val_size: int = 5000,
        seed: int = 0,
        num_workers: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__(data_dir, batch_size, val_size, seed, num_workers, download)
        if latent_dim < 1 or data_dim < 1 or hidden < 1:
            raise ValueError(
                f"latent_dim, data_dim and hidden must be >= 1, got "
                f"{latent_dim}, {data_dim}, {hidden}"
            )
        if num_train < 1 or num_test < 1:
            raise ValueError(f"num_train and num_test must be >= 1, got {num_train}, {num_test}")
        if val_size >= num_train:  # known now: no need to wait for setup(), deep in the run
            raise ValueError(
                f"val_size={val_size} leaves no training data: num_train={num_train} is the "
                f"whole training pool; lower val_size or raise num_train"
            )
        self.latent_dim = latent_dim
        self.data_dim = data_dim
        self.hidden = hidden
        self.num_train = num_train
        self.num_test = num_test
        self._data: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    @property
    @override
    def data_shape(self) -> tuple[int, ...]:
        return (self.data_dim,)

    def _generate(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self._data is None:
            gen = torch.Generator().manual_seed(self.seed)
            f = random_mlp(self.latent_dim, self.data_dim, self.hidden, gen)
            z = torch.randn(self.num_train + self.num_test, self.latent_dim, generator=gen)
            x = f(z)
            x_train = x[: self.num_train]
            mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
            x = (x - mean) / std
            n = self.num_train
            self._data = (x[:n], z[:n], x[n:], z[n:])
        return self._data

    @override
    def load_split(self, train: bool) -> tuple[Tensor, Tensor]:
        x_train, z_train, x_test, z_test = self._generate()
        return (x_train, z_train) if train else (x_test, z_test)
