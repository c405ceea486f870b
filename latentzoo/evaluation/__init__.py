"""Evaluation: one spec (:class:`EvaluationSpec`), one function (:func:`evaluate`), one result
(:class:`Results`), under ``latentzoo evaluate`` and every ``latentzoo benchmark`` cell.

    import latentzoo
    from latentzoo.datamodules import FashionMNIST
    from latentzoo.evaluation import EvaluationSpec

    model = latentzoo.load("runs/VAE-FashionMNIST/version_0/checkpoints/last.ckpt")
    spec = EvaluationSpec(sampler=["prior", "gmm"], extractor="inception", split="test")
    results = latentzoo.evaluate(model, FashionMNIST(), spec, out_dir="eval")
    results.rows["gmm"]["fid_inception"]
"""

from latentzoo.evaluation.core import evaluate, score_samples
from latentzoo.evaluation.files import BadInputError, load_model, load_samples
from latentzoo.evaluation.results import Results
from latentzoo.evaluation.spec import EvaluationSpec

__all__ = [
    "BadInputError",
    "EvaluationSpec",
    "Results",
    "evaluate",
    "load_model",
    "load_samples",
    "score_samples",
]
