"""FID and KID as torchmetrics ``Metric`` objects fed with features, and their on-disk real cache.

FID (Heusel et al. 2017, eq. 6) is the Fréchet distance between Gaussians fitted to the features
of real and generated data; KID (Bińkowski et al. 2018, eq. 6) the unbiased MMD^2 with the cubic
kernel k(a, b) = (a.b / d + 1)^3, averaged over random subsets.

Both metrics are torchmetrics' ``FrechetInceptionDistance`` / ``KernelInceptionDistance`` given
an identity "network": the callback runs the feature extractor once per batch and passes features,
so one Inception forward serves both metrics, and the 95 MB network never lives in a metric or in
the LightningModule's checkpoint. FID's ``compute`` uses :mod:`latentzoo.metrics.frechet`.

Real statistics (FID's feature sum, sum of outer products and count; KID's features) are summed
over ranks like any metric state. :func:`real_state` / :func:`load_real_state` move them to and
from a file; under DDP only rank 0 loads them (the other ranks hold zeros and no features), so the
sum over ranks is the cached value, not ``world_size`` times it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from latentzoo.metrics.frechet import frechet_distance

__all__ = ["FrechetDistance", "KernelDistance", "cache_key", "load_real_state", "real_state"]


class _Features(nn.Module):
    """Identity with a ``num_features`` attribute, so torchmetrics takes features as its input."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"expected (B, {self.num_features}) features, got shape {tuple(features.shape)}"
            )
        return features


class FrechetDistance(FrechetInceptionDistance):
    """FID on features; real statistics survive ``reset()`` (only the generated side is redone).

    Args:
        num_features: Feature dimension.
    """

    def __init__(self, num_features: int, **kwargs: Any) -> None:
        super().__init__(
            feature=_Features(num_features), reset_real_features=False, normalize=True, **kwargs
        )
        self.num_features = num_features

    def compute(self) -> Tensor:
        n_real, n_fake = int(self.real_features_num_samples), int(self.fake_features_num_samples)
        if n_real < 2 or n_fake < 2:
            raise RuntimeError(f"FID needs >= 2 real and fake samples, has {n_real} and {n_fake}")
        return frechet_distance(*self._moments(True), *self._moments(False)).float()

    def _moments(self, real: bool) -> tuple[Tensor, Tensor]:
        side = "real" if real else "fake"
        s = getattr(self, f"{side}_features_sum")  # (F,) float64
        outer = getattr(self, f"{side}_features_cov_sum")  # (F, F)
        n = getattr(self, f"{side}_features_num_samples")
        mu = s / n
        return mu, (outer - n * torch.outer(mu, mu)) / (n - 1)


class KernelDistance(KernelInceptionDistance):
    """KID on features; real features survive ``reset()``.

    Feed each side with one ``update`` per rank (concatenate the batches first): torchmetrics
    gathers list states entry by entry, so ranks with different numbers of entries would hang.
    """

    def __init__(self, num_features: int, subsets: int = 100, subset_size: int = 1000) -> None:
        super().__init__(
            feature=_Features(num_features),
            subsets=subsets,
            subset_size=subset_size,
            reset_real_features=False,
            normalize=True,
        )
        self.num_features = num_features


def real_state(fid: FrechetDistance, kid: KernelDistance | None) -> dict[str, Tensor]:
    """The real-side state of both metrics (as this rank sees it; sync first for the global one)."""
    state = {
        "sum": fid.real_features_sum.cpu(),
        "cov_sum": fid.real_features_cov_sum.cpu(),
        "n": fid.real_features_num_samples.cpu(),
    }
    if kid is not None and kid.real_features:
        state["features"] = torch.cat([f.cpu() for f in kid.real_features])  # (N, F)
    return state


def load_real_state(
    fid: FrechetDistance, kid: KernelDistance | None, state: dict[str, Tensor] | None
) -> None:
    """Set the real side of both metrics; ``None`` (ranks > 0 under DDP) sets an empty one."""
    dev = fid.real_features_sum.device
    if state is None:
        fid.real_features_sum = torch.zeros_like(fid.real_features_sum)
        fid.real_features_cov_sum = torch.zeros_like(fid.real_features_cov_sum)
        fid.real_features_num_samples = torch.zeros_like(fid.real_features_num_samples)
        if kid is not None:
            kid.real_features = [torch.empty(0, kid.num_features, device=dev)]
        return
    fid.real_features_sum = state["sum"].to(dev, torch.float64)
    fid.real_features_cov_sum = state["cov_sum"].to(dev, torch.float64)
    fid.real_features_num_samples = state["n"].to(dev, torch.long)
    if kid is not None:
        if "features" not in state:
            raise ValueError("the cached real statistics hold no KID features; delete the file")
        kid.real_features = [state["features"].to(dev, torch.float32)]


def cache_key(**parts: Any) -> str:
    """A short hash of everything that determines the real statistics (JSON, sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_state(path: Path, state: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), so a crashed run never leaves half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state": state, "meta": meta}, tmp)
    tmp.replace(path)


def load_state(path: Path) -> dict[str, Tensor] | None:
    """The cached state, or ``None`` when there is no file yet."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)["state"]
