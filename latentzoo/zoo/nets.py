"""Plain ``nn.Module`` encoders, decoders and critics, sized from the data's shape.

Images use DCGAN-style convolutions (Radford et al. 2016): 4x4 kernels with stride 2, batch norm
after every layer but the first and the last, LeakyReLU(0.2) going down and ReLU going up. The
number of stride-2 layers is fixed per image size so the smallest feature map is 7x7 (28x28 input)
or 4x4 (32x32 and 64x64). Flat vectors use a two-hidden-layer MLP. :class:`SkipMLP` is Dai &
Wipf's second-stage network (the input concatenated to the last hidden layer).

These modules know nothing about losses or optimizers; the systems in ``zoo/`` own those.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "SUPPORTED_IMAGE_SIZES",
    "ConvDecoder",
    "ConvEncoder",
    "SkipMLP",
    "build_decoder",
    "build_encoder",
    "check_data_shape",
    "mlp",
]

# Image side -> number of stride-2 layers; the smallest map is side / 2**n.
SUPPORTED_IMAGE_SIZES: dict[int, int] = {28: 2, 32: 3, 64: 4}


def check_data_shape(data_shape: Sequence[int]) -> tuple[int, ...]:
    """Validate a sample shape, ``(D,)`` or ``(C, H, W)``, and return it as a tuple.

    Raises:
        ValueError: naming the shape and the shapes the nets take, at set-up rather than as a
            matmul error inside the first forward pass.
    """
    shape = tuple(int(s) for s in data_shape)
    if len(shape) == 1 and shape[0] >= 1:
        return shape
    if len(shape) == 3:
        c, h, w = shape
        if c >= 1 and h == w and h in SUPPORTED_IMAGE_SIZES:
            return shape
    sizes = ", ".join(f"{s}x{s}" for s in SUPPORTED_IMAGE_SIZES)
    raise ValueError(
        f"latentzoo's nets cannot take data of shape {shape}: they take flat vectors (D,) or "
        f"square images (C, H, W) of {sizes}. Resize the data, or pass your own encoder/decoder "
        f"by overriding build_encoder() and build_decoder() in a subclass."
    )


Activation = Literal["leaky_relu", "relu"]


def _activation(name: Activation, slope: float) -> nn.Module:
    return nn.LeakyReLU(slope) if name == "leaky_relu" else nn.ReLU()


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: int,
    depth: int = 2,
    slope: float = 0.2,
    activation: Activation = "leaky_relu",
) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` units (LeakyReLU(``slope``) or ReLU), then a linear
    output."""
    layers: list[nn.Module] = []
    dims = [in_dim] + [hidden] * depth
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), _activation(activation, slope)]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


@torch.no_grad()
def glorot_(module: nn.Module) -> nn.Module:
    """TF1 Keras ``Dense`` initialisation, in place: glorot-normal kernels, and biases drawn
    from glorot-uniform of a 1-D shape, U(+-sqrt(3 / units)) (a ``bias_initializer=None``
    falls back to the variable's default initializer in TF 1.15, as in MaskAAE's nets)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            bound = math.sqrt(3 / m.out_features)
            nn.init.uniform_(m.bias, -bound, bound)
    return module


class SkipMLP(nn.Module):
    """Dai & Wipf's second-stage network: ``depth`` x [Linear(``hidden``), ReLU], then the input
    concatenated to the last hidden layer, then a linear output (TwoStageVAE,
    ``network/two_stage_vae_model.py``: ``t = concat([z, t])`` before the output heads).
    Initialised as ``tf.layers.dense``: glorot-uniform weights, zero biases."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, depth: int = 3) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"SkipMLP needs depth >= 1, got {depth}")
        self.trunk = mlp(in_dim, hidden, hidden, depth - 1, activation="relu")
        self.trunk.append(nn.ReLU())  # the output layer of ``mlp`` is the last hidden layer here
        self.head = nn.Linear(in_dim + hidden, out_dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.cat([x, self.trunk(x)], dim=1))  # (B, out_dim)


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_dim); ``features`` is the conv trunk, ``head`` the linear layer.

    The split lets a discriminator reuse the trunk's last feature map as a learned similarity
    (VAE-GAN) without re-running the head.
    """

    def __init__(self, data_shape: Sequence[int], out_dim: int, width: int = 32) -> None:
        super().__init__()
        c, h, _ = check_data_shape(data_shape)
        if len(data_shape) != 3:
            raise ValueError(f"ConvEncoder takes (C, H, W) images, got shape {tuple(data_shape)}")
        n = SUPPORTED_IMAGE_SIZES[h]
        layers: list[nn.Module] = []
        ch_in, ch = c, width
        for i in range(n):
            layers.append(nn.Conv2d(ch_in, ch, 4, 2, 1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            ch_in, ch = ch, ch * 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = ch_in * (h // 2**n) ** 2
        self.head = nn.Linear(self.feature_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, out_dim)


class ConvDecoder(nn.Module):
    """(B, latent_dim) -> (B, out_channels, H, W): the mirror image of :class:`ConvEncoder`."""

    def __init__(
        self, latent_dim: int, data_shape: Sequence[int], out_channels: int, width: int = 32
    ) -> None:
        super().__init__()
        _, h, _ = check_data_shape(data_shape)
        n = SUPPORTED_IMAGE_SIZES[h]
        self.side = h // 2**n
        self.ch = width * 2 ** (n - 1)
        self.fc = nn.Sequential(nn.Linear(latent_dim, self.ch * self.side**2), nn.ReLU())
        layers: list[nn.Module] = []
        ch = self.ch
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(),
            ]
            ch //= 2
        layers.append(nn.ConvTranspose2d(ch, out_channels, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(-1, self.ch, self.side, self.side)  # (B, ch, s, s)
        return self.net(h)  # (B, out_channels, H, W), unbounded: the likelihood maps it


def build_encoder(data_shape: Sequence[int], out_dim: int, width: int = 32) -> nn.Module:
    """A conv encoder for images or an MLP (``4 * width`` units per layer) for flat vectors."""
    shape = check_data_shape(data_shape)
    if len(shape) == 1:
        return mlp(shape[0], out_dim, hidden=4 * width)
    return ConvEncoder(shape, out_dim, width)


def build_decoder(
    latent_dim: int, data_shape: Sequence[int], out_channels: int, width: int = 32
) -> nn.Module:
    """The decoder matching :func:`build_encoder`.

    ``out_channels`` is how many numbers per data coordinate the likelihood needs (2 for a mean
    and a log-variance); they are stacked along dim 1, so ``out.chunk(k, dim=1)`` splits them for
    images ``(B, k*C, H, W)`` and vectors ``(B, k*D)`` alike.
    """
    shape = check_data_shape(data_shape)
    if len(shape) == 1:
        return mlp(latent_dim, out_channels * shape[0], hidden=4 * width)
    return ConvDecoder(latent_dim, shape, out_channels * shape[0], width)
