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
  is also the prior of :class:`latentzoo.zoo.TwoStageVAE`, which trains it inside its own fit.

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
from tqdm.auto import tqdm

from latentzoo.zoo.densities import (
    LatentDensity,
    StandardNormal,
    log_normal_diag,
    register_density,
)
from latentzoo.zoo.likelihoods import adam_with_gamma
from latentzoo.zoo.vae import VAE, reparameterize

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
    temporaries and nothing solved per code (the code before issue 11 did, ~20x slower).

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


class SecondStageVAE(VAE):
    """Dai & Wipf's second stage: a VAE with learned gamma whose data are codes u ~ q(u|x).

    Its data and latent dimension are both the code dimension ``dim``, as in the paper, its nets
    MLPs of ``4 * width`` units. :class:`SecondStage` fits one to a trained model's codes;
    :class:`latentzoo.zoo.TwoStageVAE` trains one as its stage 2.

    Args:
        dim: Code dimension.
        width: Width of its MLPs.
        lr: Adam's learning rate.
        gamma_lr: Adam's learning rate for gamma (see :func:`adam_with_gamma`).
    """

    def __init__(self, dim: int, width: int = 64, lr: float = 1e-3, gamma_lr: float = 1e-2) -> None:
        super().__init__(
            data_shape=(dim,), latent_dim=dim, likelihood="gaussian_gamma", width=width, lr=lr
        )
        self.gamma_lr = gamma_lr

    def code_losses(self, mu: Tensor, logvar: Tensor | None = None) -> dict[str, Tensor]:
        """The negative ELBO on codes u = mu + sigma * eps ~ q(u|x) (u = mu when no logvar)."""
        u = mu if logvar is None else reparameterize(mu, logvar)  # (B, dim)
        losses = self.compute_losses(u.detach())
        losses["gamma"] = self.likelihood.gamma.detach()  # type: ignore[operator]
        return losses

    def configure_optimizers(self) -> torch.optim.Adam:
        return adam_with_gamma(self, self.lr, self.gamma_lr)


@register_density(name="two_stage")
class SecondStage(LatentDensity):
    """Dai & Wipf's second stage as a density: a :class:`SecondStageVAE` on the codes.

    ``fit`` trains it with Adam for ``epochs`` passes over the codes; a code of a stochastic
    encoder is redrawn u = mu + sigma * eps at every pass, as the paper trains on u ~ q(u|x).
    ``sample`` goes z ~ N(0, I) -> u = the second decoder's mean; ``log_prob`` is the
    importance-weighted estimate of its marginal (Burda et al. 2016) with ``iw_samples`` draws
    of the second encoder, log 1/K sum_k p(u|z_k) p(z_k) / q(z_k|u): a VAE has no exact density.
    :meth:`around` views the stage 2 a :class:`~latentzoo.zoo.TwoStageVAE` trains as one.

    Args:
        dim: Code dimension (the second stage's data dimension and, as in the paper, its
            latent dimension); 0: set when bound to a model.
        width: Width of its MLPs (``4 * width`` units per hidden layer).
        epochs: Passes over the codes.
        lr: Adam's learning rate.
        gamma_lr: Adam's learning rate for gamma (see
            :func:`latentzoo.zoo.likelihoods.adam_with_gamma`).
        batch_size: Codes per step.
        seed: Seed of the initialisation and the shuffling.
        iw_samples: K of the ``log_prob`` estimate.
    """

    vae: SecondStageVAE

    def __init__(
        self,
        dim: int = 0,
        width: int = 64,
        epochs: int = 20,
        lr: float = 1e-3,
        gamma_lr: float = 1e-2,
        batch_size: int = 128,
        seed: int = 0,
        iw_samples: int = 64,
    ) -> None:
        super().__init__(dim)
        if min(epochs, batch_size, iw_samples) < 1:
            raise ValueError(
                f"epochs, batch_size and iw_samples must be >= 1, got {epochs}, {batch_size}, "
                f"{iw_samples}"
            )
        self.width, self.lr, self.gamma_lr = width, lr, gamma_lr
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.iw_samples = iw_samples
        self.init_args = {"width": width, "epochs": epochs, "lr": lr, "gamma_lr": gamma_lr,
                          "batch_size": batch_size, "seed": seed,
                          "iw_samples": iw_samples}  # fmt: skip
        self._bind_given_dim()

    def build(self, dim: int) -> None:
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.vae = SecondStageVAE(dim, self.width, self.lr, self.gamma_lr)

    @classmethod
    def around(cls, vae: SecondStageVAE) -> SecondStage:
        """A density over ``vae`` (trained elsewhere), sharing its modules."""
        density = cls()
        density.latent_dim = vae.latent_dim
        density.vae = vae
        return density

    @torch.enable_grad()
    def fit(self, mu: Tensor, logvar: Tensor | None = None) -> None:
        self.check_codes(mu, min_n=2)
        device = next(self.vae.parameters()).device
        mu = mu.detach().to(device)
        logvar = None if logvar is None else logvar.detach().to(device)
        opt = self.vae.configure_optimizers()
        gen = torch.Generator().manual_seed(self.seed)
        self.vae.train()
        for _ in tqdm(range(self.epochs), desc="second stage", leave=False):
            for idx in torch.randperm(len(mu), generator=gen).split(self.batch_size):
                codes = (mu[idx], None if logvar is None else logvar[idx])
                loss = self.vae.code_losses(*codes)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.vae.eval()

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.vae.sample(n)

    @torch.no_grad()
    def log_prob(self, u: Tensor) -> Tensor:
        vae, k = self.vae, self.iw_samples
        mu, logvar = vae.posterior(u)  # (N, D) each
        z = reparameterize(mu[None], logvar[None], torch.randn(k, *mu.shape, device=u.device))
        flat = z.reshape(-1, z.shape[-1])  # (K N, D)
        log_px = -vae.likelihood.nll(u.repeat(k, 1), vae.decoder(flat)).reshape(k, -1)
        log_pz = vae.prior.log_prob(flat).reshape(k, -1)
        log_qz = log_normal_diag(z, mu[None], logvar[None])  # (K, N)
        return torch.logsumexp(log_px + log_pz - log_qz, 0) - math.log(k)  # (N,)
