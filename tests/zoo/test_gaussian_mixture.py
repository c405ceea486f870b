"""GaussianMixture's EM: the batched E and M steps give what the per-code originals gave, what an
independent NumPy EM gives from the same start, and a known mixture's parameters and density."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from latentzoo.zoo.samplers import GaussianMixture

sys.path.insert(0, str(Path(__file__).parents[2] / "perf"))
# the EM as it was before the batched one (commit a21834d), kept as the reference: one
# triangular solve per code and component, and (N, K, D) differences in the M step
from gmm_fit import PerCodeGaussianMixture

F64 = torch.float64


def random_mixture(
    dim: int, k: int, diag: bool, gen: torch.Generator, spread: float = 3.0
) -> tuple[Tensor, ...]:
    """(weights (K,), means (K, D), covariances (K, D, D)) of a random, well-conditioned mixture;
    ``spread`` ~1 makes the components overlap (covariance scale ~1), so EM has work to do."""
    weights = torch.rand(k, generator=gen, dtype=F64) + 0.2
    means = spread * torch.randn(k, dim, generator=gen, dtype=F64)
    if diag:
        cov = torch.diag_embed(torch.rand(k, dim, generator=gen, dtype=F64) + 0.1)
    else:
        a = torch.randn(k, dim, dim, generator=gen, dtype=F64)
        cov = a @ a.mT / dim + 0.1 * torch.eye(dim, dtype=F64)
    return weights / weights.sum(), means, cov


def draw(weights: Tensor, means: Tensor, cov: Tensor, n: int, gen: torch.Generator) -> Tensor:
    comp = torch.multinomial(weights, n, replacement=True, generator=gen)  # (n,)
    eps = torch.randn(n, means.shape[1], 1, generator=gen, dtype=F64)
    return means[comp] + (torch.linalg.cholesky(cov)[comp] @ eps).squeeze(-1)  # (n, D)


def set_state(gmm: GaussianMixture, weights: Tensor, means: Tensor, cov: Tensor) -> None:
    gmm.weights.copy_(weights)
    gmm.means.copy_(means)
    gmm.scale_tril.copy_(torch.linalg.cholesky(cov))


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_log_prob_equals_the_per_code_solve(covariance: str) -> None:
    gen = torch.Generator().manual_seed(1)
    for dim, k in [(1, 1), (5, 3), (16, 10)]:
        params = random_mixture(dim, k, covariance == "diag", gen)
        new = GaussianMixture(dim, k, covariance)  # type: ignore[arg-type]
        old = PerCodeGaussianMixture(dim, k, covariance)  # type: ignore[arg-type]
        set_state(new, *params)
        set_state(old, *params)
        z = 4 * torch.randn(300, dim, generator=gen, dtype=F64)  # near and far from the means
        torch.testing.assert_close(new._log_joint(z), old._log_joint(z), rtol=1e-10, atol=0)
        torch.testing.assert_close(new.log_prob(z), old.log_prob(z), rtol=1e-10, atol=0)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_fit_gives_what_the_per_code_implementation_gave(covariance: str) -> None:
    gen = torch.Generator().manual_seed(2)
    codes = draw(*random_mixture(4, 3, False, gen, spread=1.0), n=600, gen=gen).float()
    new = GaussianMixture(4, 3, covariance)  # type: ignore[arg-type]
    old = PerCodeGaussianMixture(4, 3, covariance)  # type: ignore[arg-type]
    new.fit(codes)
    old.fit(codes)
    initial = GaussianMixture(4, 3, covariance, max_iter=0)  # type: ignore[arg-type]
    initial.fit(codes)
    # EM moved well away from the k-means start, so agreeing is not agreeing on the start.
    assert new.log_prob(codes).mean() > initial.log_prob(codes).mean() + 0.02
    for name in ("weights", "means", "scale_tril"):
        torch.testing.assert_close(getattr(new, name), getattr(old, name), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(new.log_prob(codes), old.log_prob(codes), rtol=1e-10, atol=0)


def numpy_em(
    z: np.ndarray, weights: np.ndarray, means: np.ndarray, cov: np.ndarray, n_iter: int, reg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Textbook full-covariance EM (Bishop, PRML sec. 9.2.2) by matrix inverse and slogdet."""

    def log_joint(weights: np.ndarray, means: np.ndarray, cov: np.ndarray) -> np.ndarray:
        cols = []
        for w, m, c in zip(weights, means, cov, strict=True):
            diff = z - m  # (N, D)
            maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(c), diff)
            log_det = np.linalg.slogdet(c)[1]
            cols.append(np.log(w) - 0.5 * (maha + log_det + z.shape[1] * np.log(2 * np.pi)))
        return np.stack(cols, axis=1)  # (N, K)

    def log_lik(lj: np.ndarray) -> np.ndarray:
        top = lj.max(1, keepdims=True)
        return (top + np.log(np.exp(lj - top).sum(1, keepdims=True)))[:, 0]  # (N,)

    for _ in range(n_iter):
        lj = log_joint(weights, means, cov)
        resp = np.exp(lj - log_lik(lj)[:, None])  # (N, K)
        nk = resp.sum(0)
        weights, means = nk / len(z), resp.T @ z / nk[:, None]
        cov = np.stack(
            [
                (r[:, None] * (z - m)).T @ (z - m) / n
                for r, m, n in zip(resp.T, means, nk, strict=True)
            ]
        ) + reg * np.eye(z.shape[1])
    return weights, means, cov, float(log_lik(log_joint(weights, means, cov)).mean())


def test_fit_agrees_with_an_independent_numpy_em() -> None:
    gen = torch.Generator().manual_seed(3)
    codes = draw(*random_mixture(3, 4, False, gen, spread=1.0), n=800, gen=gen)
    start = GaussianMixture(3, 4, max_iter=0)
    start.fit(codes)  # k-means and one M step: the start both EMs share
    fitted = GaussianMixture(3, 4, max_iter=15, tol=-math.inf)  # exactly 15 EM iterations
    fitted.fit(codes)
    cov0 = (start.scale_tril @ start.scale_tril.mT).numpy()  # reg already on its diagonal
    weights, means, cov, mean_ll = numpy_em(
        codes.numpy(), start.weights.numpy(), start.means.numpy(), cov0, 15, fitted.reg
    )
    assert not np.allclose(means, start.means.numpy(), atol=1e-3)  # 15 iterations moved it
    np.testing.assert_allclose(fitted.weights.numpy(), weights, rtol=1e-8)
    np.testing.assert_allclose(fitted.means.numpy(), means, rtol=1e-8, atol=1e-10)
    fitted_cov = (fitted.scale_tril @ fitted.scale_tril.mT).numpy()
    np.testing.assert_allclose(fitted_cov, cov, rtol=1e-8, atol=1e-10)
    assert float(fitted.log_prob(codes).mean()) == pytest.approx(mean_ll, rel=1e-10)


@pytest.mark.parametrize("dim", [2, 5])
def test_fit_recovers_a_known_mixture_and_its_density(dim: int) -> None:
    # Seeds 4 and 8 land k-means (from random codes, no restarts) with two centres in one
    # cluster and EM in that local optimum; this is a test of EM, not of the initialisation.
    gen = torch.Generator().manual_seed(6)
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    means = 8 * torch.eye(3, dim, dtype=F64)  # 8 apart or more; covariances' scale ~1
    a = torch.randn(3, dim, dim, generator=gen, dtype=F64)
    cov = a @ a.mT / dim + 0.3 * torch.eye(dim, dtype=F64)
    codes = draw(weights, means, cov, 6000, gen)
    gmm = GaussianMixture(dim, 3)
    gmm.fit(codes)
    order = torch.cdist(means, gmm.means).argmin(1)  # fitted component nearest each true one
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(gmm.weights[order], weights, rtol=0, atol=0.02)
    torch.testing.assert_close(gmm.means[order], means, rtol=0, atol=0.1)
    fitted_cov = gmm.scale_tril @ gmm.scale_tril.mT
    torch.testing.assert_close(fitted_cov[order], cov, rtol=0, atol=0.15)
    truth = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(weights),
        torch.distributions.MultivariateNormal(means, covariance_matrix=cov),
    )
    true_ll, fitted_ll = float(truth.log_prob(codes).mean()), float(gmm.log_prob(codes).mean())
    # The maximum-likelihood fit beats the truth on its own data, by about #params / 2N nats.
    assert true_ll - 1e-3 < fitted_ll < true_ll + 0.02
