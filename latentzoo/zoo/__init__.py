"""The zoo: autoencoder-based generative models as LightningModules, by name.

Importing this package registers every built-in model; plugins are loaded on first use of
:func:`list_models`, :func:`get_model_class` or :func:`create_model`.
"""

from latentzoo.zoo.base import AutoencoderModule
from latentzoo.zoo.beta_vae import BetaVAE
from latentzoo.zoo.lmgae import LMGAE
from latentzoo.zoo.registry import (
    create_model,
    get_model_class,
    list_models,
    load_plugins,
    register_model,
)
from latentzoo.zoo.vae import VAE
from latentzoo.zoo.wae_gp import WAEGP

__all__ = [
    "LMGAE",
    "VAE",
    "WAEGP",
    "AutoencoderModule",
    "BetaVAE",
    "create_model",
    "get_model_class",
    "list_models",
    "load_plugins",
    "register_model",
]
