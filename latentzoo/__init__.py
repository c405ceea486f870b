"""latentzoo: a PyTorch Lightning zoo of autoencoder-based generative models."""

from latentzoo.loading import load
from latentzoo.zoo import AutoencoderModule, create_model, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "AutoencoderModule",
    "__version__",
    "create_model",
    "list_models",
    "load",
    "register_model",
]
