"""FID and KID as torchmetrics ``Metric`` objects fed with features, for use outside the callbacks.

FID (Heusel et al. 2017, eq. 6) is the Fréchet distance between Gaussians fitted to the features
of real and generated data, kept as running sums (the feature sum, the sum of outer products and
the count, in float64), so any number of samples costs F^2 numbers; KID (Bińkowski et al. 2018,
eq. 6) keeps the features and averages the unbiased MMD^2 over random subsets
(:func:`latentzoo.metrics.features.kid_estimates`). Both keep their real side across ``reset()``:
only the generated side is redone, as when one model is evaluated every few epochs.

Their states are summed (FID) or gathered in rank order (KID) over DDP ranks like any metric
state. :func:`real_state` / :func:`load_real_state` move the real side to and from a dict (under
DDP, load it on one rank and an empty side on the others: the sum over ranks is the saved value).

:class:`latentzoo.callbacks.FIDCallback` does not use these: it extracts the features once and
passes them to every registered feature metric (:mod:`latentzoo.metrics.features`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from latentzoo.metrics.features import kid_estimates
from latentzoo.metrics.frechet import frechet_distance

__all__ = ["FrechetDistance", "KernelDistance", "load_real_state", "real_state"]


def _check_width(features: Tensor, num_features: int) -> None:
    if features.ndim != 2 or features.shape[1] != num_features:
        raise ValueError(
            f"expected (B, {num_features}) features, got shape {tuple(features.shape)}"
        )


class FrechetDistance(Metric):
    """FID on features; the real statistics survive ``reset()``.

    Args:
        num_features: Feature dimension.
    """

    full_state_update = False
    higher_is_better = False
    real_features_sum: Tensor
    real_features_cov_sum: Tensor
    real_features_num_samples: Tensor
    fake_features_sum: Tensor
    fake_features_cov_sum: Tensor
    fake_features_num_samples: Tensor

    def __init__(self, num_features: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_features = num_features
        f = num_features
        for side in ("real", "fake"):
            self.add_state(f"{side}_features_sum", torch.zeros(f, dtype=torch.float64), "sum")
            self.add_state(
                f"{side}_features_cov_sum", torch.zeros(f, f, dtype=torch.float64), "sum"
            )
            self.add_state(f"{side}_features_num_samples", torch.tensor(0).long(), "sum")

    def update(self, features: Tensor, real: bool) -> None:
        """Add (B, F) features to one side."""
        _check_width(features, self.num_features)
        f = features.detach().double()
        side = "real" if real else "fake"
        setattr(self, f"{side}_features_sum", getattr(self, f"{side}_features_sum") + f.sum(0))
        cov_sum = getattr(self, f"{side}_features_cov_sum") + f.T @ f
        setattr(self, f"{side}_features_cov_sum", cov_sum)
        count = getattr(self, f"{side}_features_num_samples") + len(f)
        setattr(self, f"{side}_features_num_samples", count)

    def compute(self) -> Tensor:
        n_real, n_fake = int(self.real_features_num_samples), int(self.fake_features_num_samples)
        if n_real < 2 or n_fake < 2:
            raise RuntimeError(f"FID needs >= 2 real and fake samples, has {n_real} and {n_fake}")
        return frechet_distance(*self._moments("real"), *self._moments("fake")).float()

    def _moments(self, side: str) -> tuple[Tensor, Tensor]:
        s = getattr(self, f"{side}_features_sum")  # (F,) float64
        outer = getattr(self, f"{side}_features_cov_sum")  # (F, F)
        n = getattr(self, f"{side}_features_num_samples")
        mu = s / n
        return mu, (outer - n * torch.outer(mu, mu)) / (n - 1)

    def reset(self) -> None:
        """Clear the generated side only."""
        names = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")
        kept = {k: getattr(self, k) for k in names}
        super().reset()
        for key, value in kept.items():
            setattr(self, key, value)


class KernelDistance(Metric):
    """KID on features; the real features survive ``reset()``.

    ``compute`` returns (mean, std) over ``subsets`` random subsets, drawn from the global
    random state (seed it with ``torch.manual_seed`` for reproducible values). Feed each side
    with one ``update`` per rank (concatenate the batches first): torchmetrics gathers list
    states entry by entry, so ranks with different numbers of entries would hang.

    Args:
        num_features: Feature dimension.
        subsets: Number of subsets.
        subset_size: Samples per subset.
    """

    full_state_update = False
    higher_is_better = False
    real_features: list[Tensor]
    fake_features: list[Tensor]

    def __init__(
        self, num_features: int, subsets: int = 100, subset_size: int = 1000, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_features, self.subsets, self.subset_size = num_features, subsets, subset_size
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool) -> None:
        _check_width(features, self.num_features)
        (self.real_features if real else self.fake_features).append(features.detach())

    def compute(self) -> tuple[Tensor, Tensor]:
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        seed = int(torch.randint(2**62, ()))
        scores = kid_estimates(real, fake, self.subsets, self.subset_size, seed)
        return scores.mean(), scores.std(unbiased=False)

    def reset(self) -> None:
        """Clear the generated side only."""
        kept = list(self.real_features)
        super().reset()
        self.real_features = kept


def real_state(fid: FrechetDistance, kid: KernelDistance | None) -> dict[str, Tensor]:
    """The real side of both metrics (as this rank sees it; sync first for the global one)."""
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
            raise ValueError("the saved real state holds no KID features")
        kid.real_features = [state["features"].to(dev, torch.float32)]
