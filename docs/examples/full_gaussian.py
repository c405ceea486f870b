"""A new latent density in one file: one full-covariance Gaussian fitted to the training codes,
the simplest ex-post density (Ghosh et al. 2020's GMM with one component).

Fitted by moment matching to the aggregated posterior q(z) = 1/N sum_n N(z; mu_n, diag s_n^2):
its mean is the mean of the codes, its covariance their covariance plus the mean posterior
variance (zero for a deterministic encoder). Registering the class is all it takes for it to be
a sampler of ``latentzoo evaluate --sampler gaussian``, of a suite's ``samplers:`` and of
``--trainer.callbacks+=LatentSampler --trainer.callbacks.kind gaussian``::

    PYTHONPATH=docs/examples LATENTZOO_PLUGINS=full_gaussian latentzoo evaluate \\
        --ckpt_path runs/VAE-Synthetic/version_0/checkpoints/last.ckpt --sampler gaussian
"""

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from latentzoo.zoo import LatentDensity, register_density


@register_density(name="gaussian")
class FullGaussian(LatentDensity):
    """N(m, S) with the codes' mean and covariance (plus the mean posterior variance).

    Args:
        dim: Code dimension (0: set when bound to a model).
        reg: Added to the covariance's diagonal (a collapsed dimension stays invertible).
    """

    mean: Tensor
    scale_tril: Tensor

    def __init__(self, dim: int = 0, reg: float = 1e-6) -> None:
        super().__init__(dim)
        self.reg = reg
        self.init_args = {"reg": reg}
        self._bind_given_dim()

    def build(self, dim: int) -> None:
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("scale_tril", torch.eye(dim, dtype=torch.float64))

    def fit(self, mu: Tensor, logvar: Tensor | None = None) -> None:
        self.check_codes(mu, min_n=2)
        z = mu.detach().double()  # (N, D)
        cov = torch.cov(z.T).reshape(z.shape[1], z.shape[1])
        if logvar is not None:
            cov = cov + torch.diag(logvar.detach().double().exp().mean(0))
        cov = cov + self.reg * torch.eye(len(cov), dtype=cov.dtype)
        self.mean.copy_(z.mean(0))
        self.scale_tril.copy_(torch.linalg.cholesky(cov))

    def distribution(self) -> MultivariateNormal:
        return MultivariateNormal(self.mean, scale_tril=self.scale_tril)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.distribution().log_prob(z.double())

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((n,)).float()
