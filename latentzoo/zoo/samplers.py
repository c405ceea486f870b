"""Latent samplers: densities fitted to a trained model's codes, for ``sample`` to draw from.

A model trained with prior p(z) = N(0, I) rarely has an aggregated posterior q(z) = E_x q(z|x)
that matches it; decoding prior draws that fall where no training code lies ("holes") gives poor
samples. Two remedies fit a density to the codes after (or beside) training and sample from it:

- Ghosh et al. 2020, "From variational to deterministic autoencoders", sec. 4 ("ex-post density
  estimation"): a Gaussian mixture with 10 full-covariance components fitted by EM to the codes
  of the training set, :class:`GaussianMixture`.
- Dai & Wipf 2019, "Diagnosing and enhancing VAE models", sec. 4: a second, small VAE with a
  learned decoder variance gamma trained on the codes u ~ q(u|x); sampling goes
  z ~ N(0, I) -> second decoder -> u, :class:`SecondStage`. That VAE, :class:`SecondStageVAE`,
  is also the prior of :class:`latentzoo.zoo.TwoStageVAE`, which trains it inside its own fit;
  both live in :mod:`latentzoo.zoo.second_stage` and are re-exported here.

Each is a registered :class:`~latentzoo.zoo.densities.LatentDensity` (``gmm``, ``two_stage``)
whose buffers/parameters hold its fitted state (so it is saved and restored with ``state_dict``),
sized from the code dimension (given, or by ``bind``). They are attached to a model with
:meth:`AutoencoderModule.set_latent_sampler`, usually by the callback
:class:`latentzoo.callbacks.LatentSampler`; N(0, I) itself is the ``normal`` density.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from latentzoo.zoo.densities import (
    LatentDensity,
    StandardNormal,
    register_density,
)

__all__ = ["GaussianMixture", "SecondStage", "SecondStageVAE", "StandardNormal"]


class _CentredCodes(NamedTuple):
    """Codes y = z - shift (N, D) and their products y_i y_j for i <= j (N, D (D + 1) / 2)."""

    y: Tensor
    quad: Tensor
    shift: Tensor
    pairs: tuple[Tensor, Tensor]  # the (i, j) of each column of quad

    @classmethod
    def of(cls, z: Tensor, shift: Tensor) -> _CentredCodes:
        y = z - shift
        rows, cols = torch.triu_indices(z.shape[1], z.shape[1], device=z.device)
        return cls(y, y[:, rows] * y[:, cols], shift, (rows, cols))


@register_density(name="gmm")
class GaussianMixture(LatentDensity):
    """A K-component Gaussian mixture fitted by EM (Dempster et al. 1977) in float64.

    Initialised with a few k-means (Lloyd) iterations from K distinct random codes, then EM runs
    until the mean log-likelihood gains less than ``tol`` nats. ``reg`` is added to every
    variance so a component sitting on a collapsed (constant) latent dimension stays positive
    definite; fitted posterior *means* are used (for a VAE the aggregate posterior is wider by
    the posterior variances; Ghosh et al. fit the codes of deterministic encoders).

    An EM iteration over N codes of D dims costs O(K N D^2), all of it in matmuls against the
    codes' D (D + 1) / 2 products y_i y_j, computed once per fit: (N, T) @ (T, K) for the E step's
    quadratic forms and (K, N) @ (N, T) for the M step's second moments, with no (N, K, D)
    temporaries and nothing solved per code (an earlier version did, ~20x slower).

    Args:
        dim: Code dimension (0: set when the sampler is bound to a model).
        n_components: K (10 in Ghosh et al.).
        covariance: ``full`` (Ghosh et al.) or ``diag`` (cheaper, K * dim numbers).
        max_iter: Most EM iterations.
        tol: Stop when the mean log-likelihood improves by less than this.
        reg: Added to the diagonal of every covariance.
        seed: Seed of the initialisation.
    """

    weights: Tensor  # (K,) mixing proportions
    means: Tensor  # (K, D)
    scale_tril: Tensor  # (K, D, D) Cholesky factors of the covariances

    def __init__(
        self,
        dim: int = 0,
        n_components: int = 10,
        covariance: Literal["full", "diag"] = "full",
        max_iter: int = 200,
        tol: float = 1e-5,
        reg: float = 1e-6,
        seed: int = 0,
    ) -> None:
        super().__init__(dim)
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if covariance not in ("full", "diag"):
            raise ValueError(f"covariance must be 'full' or 'diag', got {covariance!r}")
        self.n_components, self.covariance = n_components, covariance
        self.max_iter, self.tol, self.reg, self.seed = max_iter, tol, reg, seed
        self.init_args = {"n_components": n_components, "covariance": covariance,
                          "max_iter": max_iter, "tol": tol, "reg": reg, "seed": seed}  # fmt: skip
        self._bind_given_dim()

    def build(self, dim: int) -> None:
        k, d = self.n_components, dim
        self.register_buffer("weights", torch.full((k,), 1.0 / k, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(k, d, dtype=torch.float64))
        # Diagonal factors for ``diag``: one code path samples and scores both.
        self.register_buffer("scale_tril", torch.eye(d, dtype=torch.float64).repeat(k, 1, 1))

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z) under the mixture, (N,)."""
        return torch.logsumexp(self._log_joint(z.to(torch.float64)), dim=1)

    def _log_joint(self, z: Tensor) -> Tensor:
        """log pi_k + log N(z | mu_k, Sigma_k), (N, K), for any codes ``z`` (N, D)."""
        return self._log_joint_centred(_CentredCodes.of(z, self.weights @ self.means))

    def _log_joint_centred(self, codes: _CentredCodes) -> Tensor:
        """log pi_k + log N(z | mu_k, Sigma_k), (N, K), from the codes' quadratic features.

        With A_k = Sigma_k^{-1} and m_k = mu_k - c, the squared Mahalanobis distance of
        y = z - c is y^T A_k y - 2 y^T A_k m_k + m_k^T A_k m_k, and y^T A_k y is the codes'
        features y_i y_j (i <= j) against A_k's upper triangle: two matmuls, (N, T) @ (T, K)
        and (N, D) @ (D, K), with T = D (D + 1) / 2.
        """
        k, d = self.n_components, self.dim
        eye = torch.eye(d, dtype=self.means.dtype, device=self.means.device).expand(k, d, d)
        prec = torch.linalg.solve_triangular(self.scale_tril, eye, upper=False)  # L_k^{-1}
        a = prec.mT @ prec  # (K, D, D) precision matrices
        m = self.means - codes.shift  # (K, D)
        am = (a @ m[:, :, None]).squeeze(-1)  # (K, D)
        rows, cols = codes.pairs
        quad = a[:, rows, cols] * torch.where(rows == cols, 1.0, 2.0).to(a)  # (K, T)
        maha = torch.addmm((m * am).sum(-1), codes.quad, quad.T)  # (N, K)
        maha.addmm_(codes.y, am.T, alpha=-2.0)
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,) half log|S|
        log_n = -0.5 * maha - log_det - 0.5 * d * math.log(2 * math.pi)
        return log_n + self.weights.log()

    @torch.no_grad()
    def fit(self, mu: Tensor, logvar: Tensor | None = None) -> None:
        k = self.n_components
        self.check_codes(mu, min_n=k)
        z = mu.detach().to(self.means.device, torch.float64)  # (N, D)
        gen = torch.Generator().manual_seed(self.seed)
        centres = z[torch.randperm(len(z), generator=gen)[:k].to(z.device)]
        for _ in range(10):  # k-means initialisation
            assign = torch.cdist(z, centres).argmin(1)
            resp = nn.functional.one_hot(assign, k).to(z.dtype)
            centres = (resp.T @ z) / resp.sum(0).clamp_min(1)[:, None]
        codes = _CentredCodes.of(z, z.mean(0))  # the features every EM iteration reuses
        self._m_step_centred(codes, resp)
        previous = -math.inf
        for _ in range(self.max_iter):
            log_joint = self._log_joint_centred(codes)  # E step
            ll = torch.logsumexp(log_joint, 1)
            self._m_step_centred(codes, (log_joint - ll[:, None]).exp())
            mean_ll = float(ll.mean())
            if mean_ll - previous < self.tol:
                break
            previous = mean_ll

    def _m_step_centred(self, codes: _CentredCodes, resp: Tensor) -> None:
        """The M step as two matmuls: resp^T y for the means, resp^T (y_i y_j) for the second
        moments, whose difference with the means' outer products is the covariance (the codes
        are centred on their mean, so float64 loses nothing to a common offset)."""
        k, d = self.n_components, self.dim
        nk = resp.sum(0) + 1e-10  # (K,); empty components keep a finite mean
        self.weights.copy_(nk / nk.sum())
        m = (resp.T @ codes.y) / nk[:, None]  # (K, D) means about the shift
        second = (resp.T @ codes.quad) / nk[:, None]  # (K, T) E_k[y_i y_j], i <= j
        rows, cols = codes.pairs
        cov = torch.zeros(k, d, d, dtype=m.dtype, device=m.device)
        cov[:, rows, cols] = second
        cov[:, cols, rows] = second
        cov -= m[:, :, None] * m[:, None, :]
        if self.covariance == "diag":
            cov = torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))
        self.means.copy_(m + codes.shift)
        eye = torch.eye(d, dtype=m.dtype, device=m.device)
        self.scale_tril.copy_(torch.linalg.cholesky(cov + self.reg * eye))

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        comp = torch.multinomial(self.weights, n, replacement=True)  # (n,)
        eps = torch.randn(n, self.dim, 1, dtype=torch.float64, device=self.means.device)
        return (self.means[comp] + (self.scale_tril[comp] @ eps).squeeze(-1)).float()


# Defined in their own module (imported last: it registers ``two_stage``); re-exported here.
from latentzoo.zoo.second_stage import SecondStage, SecondStageVAE  # noqa: E402
