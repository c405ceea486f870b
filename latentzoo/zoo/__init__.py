"""The zoo: autoencoder-based generative models as LightningModules, by name.

Importing this package registers every built-in model; plugins are loaded on first use of
:func:`list_models`, :func:`get_model_class` or :func:`create_model`.
"""

from latentzoo.zoo.base import AutoencoderModule
from latentzoo.zoo.beta_vae import BetaVAE
from latentzoo.zoo.flow_prior import FlowPrior
from latentzoo.zoo.lipschitz import LipschitzVAE
from latentzoo.zoo.lmgae import LMGAE
from latentzoo.zoo.priors import MoG, Prior, StandardNormal, VampPrior
from latentzoo.zoo.registry import (
    create_model,
    get_model_class,
    list_models,
    load_plugins,
    register_model,
)
from latentzoo.zoo.two_stage_vae import TwoStageVAE
from latentzoo.zoo.vae import VAE
from latentzoo.zoo.vae_gan import VAEGAN
from latentzoo.zoo.wae_gp import WAEGP

__all__ = [
    "LMGAE",
    "VAE",
    "VAEGAN",
    "WAEGP",
    "AutoencoderModule",
    "BetaVAE",
    "FlowPrior",
    "LipschitzVAE",
    "MoG",
    "Prior",
    "StandardNormal",
    "TwoStageVAE",
    "VampPrior",
    "create_model",
    "get_model_class",
    "list_models",
    "load_plugins",
    "register_model",
]
