"""The zoo: autoencoder-based generative models as LightningModules, and the latent densities
they train against and generate from, each by name.

Importing this package registers every built-in model and density; plugins are loaded on first
use of :func:`list_models`, :func:`get_model_class`, :func:`create_model` (entry points
``latentzoo.models``) or :func:`list_densities`, :func:`create_density` (``latentzoo.densities``).
"""

from latentzoo.zoo.base import MODELS, AutoencoderModule
from latentzoo.zoo.beta_vae import BetaVAE
from latentzoo.zoo.densities import (
    DENSITIES,
    LatentDensity,
    StandardNormal,
    create_density,
    list_densities,
    register_density,
)
from latentzoo.zoo.flow_prior import FlowPrior
from latentzoo.zoo.lipschitz import LipschitzVAE
from latentzoo.zoo.lmgae import LMGAE
from latentzoo.zoo.priors import MoG, Prior, VampPrior
from latentzoo.zoo.registry import (
    create_model,
    get_model_class,
    list_models,
    load_plugins,
    register_model,
)
from latentzoo.zoo.samplers import GaussianMixture, SecondStage
from latentzoo.zoo.two_stage_vae import TwoStageVAE
from latentzoo.zoo.vae import VAE
from latentzoo.zoo.vae_gan import VAEGAN
from latentzoo.zoo.wae_gp import WAEGP

__all__ = [
    "DENSITIES",
    "LMGAE",
    "MODELS",
    "VAE",
    "VAEGAN",
    "WAEGP",
    "AutoencoderModule",
    "BetaVAE",
    "FlowPrior",
    "GaussianMixture",
    "LatentDensity",
    "LipschitzVAE",
    "MoG",
    "Prior",
    "SecondStage",
    "StandardNormal",
    "TwoStageVAE",
    "VampPrior",
    "create_density",
    "create_model",
    "get_model_class",
    "list_densities",
    "list_models",
    "load_plugins",
    "register_density",
    "register_model",
]
