"""A new metric in one file: the 1-nearest-neighbour two-sample test (Lopez-Paz & Oquab 2017,
"Revisiting Classifier Two-Sample Tests"; recommended for generative models by Xu et al. 2018,
"An empirical study on evaluation metrics of generative adversarial networks").

Pool the real features X_1..X_N (label 1) and the generated Y_1..Y_M (label 0), and classify
each point by the label of its nearest other point in the pool (leave-one-out). With N = M the
accuracy is 0.5 when the two sets come from one distribution and 1 when they are apart; the
accuracy on the real points alone falls towards 0 when samples crowd around (memorise) them,
on the generated ones alone it rises towards 1 when samples land off the data. Registering the
function is all it takes: ``latentzoo evaluate``, a suite's table, its report and its W&B table
show ``one_nn_accuracy_<extractor>`` and its two sides::

    PYTHONPATH=docs/examples LATENTZOO_PLUGINS=one_nn latentzoo evaluate \\
        --ckpt_path runs/VAE-Synthetic/version_0/checkpoints/last.ckpt --extractor pixels
"""

import torch
from torch import Tensor

from latentzoo.metrics.registry import MetricKey, register_feature_metric


@register_feature_metric(
    "one_nn",
    (
        MetricKey("one_nn_accuracy", ("sampler", "extractor"), None, "1-NN accuracy (0.5 best)"),
        MetricKey("one_nn_real", ("sampler", "extractor"), None, "1-NN accuracy on real"),
        MetricKey("one_nn_fake", ("sampler", "extractor"), None, "1-NN accuracy on generated"),
    ),
)
def one_nn(real: Tensor, fake: Tensor, *, seed: int = 0, chunk: int = 2048) -> dict[str, Tensor]:
    """Leave-one-out 1-NN accuracy of real (N, F) against generated (M, F) features (float64)."""
    pool = torch.cat([real, fake]).double()  # (N + M, F)
    is_real = torch.arange(len(pool)) < len(real)  # (N + M,)
    nearest = torch.empty(len(pool), dtype=torch.long)
    for start in range(0, len(pool), chunk):
        dist = torch.cdist(pool[start : start + chunk], pool)  # (c, N + M)
        rows = torch.arange(len(dist))
        dist[rows, rows + start] = float("inf")  # not its own neighbour
        nearest[start : start + chunk] = dist.argmin(1)
    correct = (is_real[nearest] == is_real).double()
    return {
        "one_nn_accuracy": correct.mean(),
        "one_nn_real": correct[is_real].mean(),
        "one_nn_fake": correct[~is_real].mean(),
    }
