"""latentzoo: a PyTorch Lightning zoo of autoencoder-based generative models.

``latentzoo.load(path)`` loads any zoo checkpoint; ``latentzoo.evaluate(model, datamodule,
spec)`` measures a model (:mod:`latentzoo.evaluation`, imported on first use: importing
``latentzoo`` stays light).
"""

from typing import Any

from latentzoo.loading import load
from latentzoo.zoo import AutoencoderModule, create_model, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "AutoencoderModule",
    "EvaluationSpec",
    "__version__",
    "create_model",
    "evaluate",
    "list_models",
    "load",
    "register_model",
]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvaluationSpec"):
        import latentzoo.evaluation as evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module 'latentzoo' has no attribute {name!r}")
