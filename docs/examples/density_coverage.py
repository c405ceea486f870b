"""A new metric in one file: density and coverage (Naeem et al. 2020, "Reliable Fidelity and
Diversity Metrics for Generative Models", eqs. (3)-(4)), beside precision and recall.

With real features X_1..X_N, generated Y_1..Y_M and B(X_i) the ball around X_i of radius its
distance to its k-th nearest real neighbour,

    density  = 1/(k M) sum_j sum_i 1[Y_j in B(X_i)],
    coverage = 1/N sum_i 1[exists j: Y_j in B(X_i)].

Density counts how many real balls each sample falls in (1 on average when the two sets are
alike, more where samples crowd into dense real regions); coverage is the share of real balls
that hold at least one sample, robust to real outliers where recall is not. Registering the
function is all it takes: ``latentzoo evaluate``, a suite's table, its report and its W&B table
show ``density_<extractor>`` and ``coverage_<extractor>``::

    PYTHONPATH=docs/examples LATENTZOO_PLUGINS=density_coverage latentzoo evaluate \\
        --ckpt_path runs/VAE-Synthetic/version_0/checkpoints/last.ckpt --extractor pixels
"""

import torch
from torch import Tensor

from latentzoo.metrics.precision_recall import knn_radii
from latentzoo.metrics.registry import MetricKey, register_feature_metric


@register_feature_metric(
    "density_coverage",
    (
        MetricKey("density", ("sampler", "extractor"), "higher", "density"),
        MetricKey("coverage", ("sampler", "extractor"), "higher", "coverage"),
    ),
)
def density_coverage(
    real: Tensor, fake: Tensor, *, seed: int = 0, k: int = 5, chunk: int = 2048
) -> dict[str, Tensor]:
    """Density and coverage of ``fake`` (M, F) against ``real`` (N, F) features (float64)."""
    real, fake = real.double(), fake.double()
    radii = knn_radii(real, k, chunk)  # (N,) distance to the k-th nearest other real point
    inside = torch.zeros(len(fake), dtype=torch.float64)  # balls each sample falls in
    covered = torch.zeros(len(real), dtype=torch.bool)
    for start in range(0, len(real), chunk):
        block = torch.cdist(real[start : start + chunk], fake) < radii[start : start + chunk, None]
        inside += block.sum(0)  # (M,)
        covered[start : start + chunk] = block.any(1)
    return {"density": inside.mean() / k, "coverage": covered.double().mean()}
