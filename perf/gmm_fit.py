"""Time of one ``GaussianMixture.fit``: the batched EM against the per-code EM it replaced.

Issue 11: fitting 10 full-covariance components to 55,000 Fashion-MNIST codes of 16 dims took
about 3 minutes on 2 cores, because the E step solved one triangular system per code and
component on Cholesky factors expanded to (N, K, D, D). The package now does one solve per
component and both steps as matmuls against the codes' pairwise products y_i y_j;
:class:`PerCodeGaussianMixture` below keeps the old EM (commit a21834d) as the baseline. Both
fits start from the same k-means initialisation and run exactly ``--iters`` EM iterations
(``tol=-inf``), so the speed-up is per EM iteration; the rounds interleave the two, and each
round prints both times, their ratio and the absolute difference of the final mean
log-likelihoods; ``--out`` writes them all as JSON, after every round. Never run by CI::

    PYTHONPATH=. python perf/gmm_fit.py                  # N=55000, D=16, K=10, full
    PYTHONPATH=. python perf/gmm_fit.py --codes codes.pt --rounds 3 --iters 50 --out gmm.json

``--codes`` reads a saved (N, D) tensor of codes (``torch.save(mu, "codes.pt")``); without it
the codes are drawn from a random K-component mixture.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import torch
from measure import run_record, write_record
from torch import Tensor

from latentzoo.zoo.samplers import GaussianMixture


class PerCodeGaussianMixture(GaussianMixture):
    """EM as it was before issue 11 (commit a21834d): the baseline."""

    def _log_joint(self, z: Tensor) -> Tensor:
        diff = (z[:, None, :] - self.means[None]).unsqueeze(-1)  # (N, K, D, 1)
        tril = self.scale_tril.expand(len(z), -1, -1, -1)
        white = torch.linalg.solve_triangular(tril, diff, upper=False).squeeze(-1)  # (N, K, D)
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,) half log|S|
        log_n = -0.5 * white.pow(2).sum(-1) - log_det - 0.5 * self.dim * math.log(2 * math.pi)
        return log_n + self.weights.log()

    def _m_step(self, z: Tensor, resp: Tensor) -> None:
        nk = resp.sum(0) + 1e-10  # (K,); empty components keep a finite mean
        self.weights.copy_(nk / nk.sum())
        self.means.copy_((resp.T @ z) / nk[:, None])
        diff = z[:, None, :] - self.means[None]  # (N, K, D)
        eye = torch.eye(self.dim, dtype=z.dtype, device=z.device)
        if self.covariance == "full":
            cov = torch.einsum("nk,nki,nkj->kij", resp, diff, diff) / nk[:, None, None]
            self.scale_tril.copy_(torch.linalg.cholesky(cov + self.reg * eye))
        else:
            var = torch.einsum("nk,nki->ki", resp, diff.pow(2)) / nk[:, None]
            self.scale_tril.copy_(torch.diag_embed((var + self.reg).sqrt()))

    @torch.no_grad()
    def fit(self, mu: Tensor, logvar: Tensor | None = None) -> None:
        k = self.n_components
        self.check_codes(mu, min_n=k)
        z = mu.detach().to(self.means.device, torch.float64)  # (N, D)
        gen = torch.Generator().manual_seed(self.seed)
        centres = z[torch.randperm(len(z), generator=gen)[:k].to(z.device)]
        for _ in range(10):  # k-means initialisation
            assign = torch.cdist(z, centres).argmin(1)
            resp = torch.nn.functional.one_hot(assign, k).to(z.dtype)
            centres = (resp.T @ z) / resp.sum(0).clamp_min(1)[:, None]
        self._m_step(z, resp)
        previous = -math.inf
        for _ in range(self.max_iter):
            log_joint = self._log_joint(z)  # E step
            ll = torch.logsumexp(log_joint, 1)
            self._m_step(z, (log_joint - ll[:, None]).exp())
            mean_ll = float(ll.mean())
            if mean_ll - previous < self.tol:
                break
            previous = mean_ll


def synthetic_codes(n: int, dim: int, k: int, seed: int) -> Tensor:
    """(n, dim) float32 codes from a random k-component mixture with correlated components."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(k, generator=gen) + 0.2
    means = 2 * torch.randn(k, dim, generator=gen)
    a = torch.randn(k, dim, dim, generator=gen)
    tril = torch.linalg.cholesky(a @ a.mT / dim + 0.1 * torch.eye(dim))  # (k, dim, dim)
    comp = torch.multinomial(weights, n, replacement=True, generator=gen)  # (n,)
    eps = torch.randn(n, dim, 1, generator=gen)
    return means[comp] + (tril[comp] @ eps).squeeze(-1)


def load_codes(path: str) -> Tensor:
    codes = torch.load(path, map_location="cpu")
    if not isinstance(codes, Tensor) or codes.ndim != 2:
        raise SystemExit(
            f"{path} must hold one (N, D) tensor of codes (torch.save(mu, path)), got "
            f"{type(codes).__name__} {tuple(getattr(codes, 'shape', ()))}"
        )
    return codes


def timed_fit(
    cls: type[GaussianMixture], codes: Tensor, args: argparse.Namespace
) -> tuple[float, float]:
    """(seconds, final mean log-likelihood) of one fit of exactly ``args.iters`` EM iterations."""
    gmm = cls(codes.shape[1], args.k, args.covariance, max_iter=args.iters, tol=-math.inf)
    start = time.perf_counter()
    gmm.fit(codes)
    seconds = time.perf_counter() - start
    return seconds, float(gmm.log_prob(codes).mean())


def measure(codes: Tensor, args: argparse.Namespace) -> None:
    """``args.rounds`` rounds of both fits, printed and, with ``--out``, written after each."""
    results: dict[str, Any] = {
        **run_record(args, torch.device("cpu")),
        "codes_shape": list(codes.shape), "seconds": {"per_code": [], "batched": []},
        "mean_log_lik": {"per_code": [], "batched": []}, "log_lik_abs_diff": [], "speedup": [],
    }  # fmt: skip
    seconds, log_lik, ratios = results["seconds"], results["mean_log_lik"], results["speedup"]
    for r in range(args.rounds):
        old_s, old_ll = timed_fit(PerCodeGaussianMixture, codes, args)
        new_s, new_ll = timed_fit(GaussianMixture, codes, args)
        ratios.append(old_s / new_s)
        print(
            f"round {r}: per-code {old_s:8.2f} s  batched {new_s:7.3f} s  speed-up "
            f"{ratios[-1]:6.1f}x  mean log-lik {new_ll:.10f} (|diff| {abs(new_ll - old_ll):.1e})"
        )
        seconds["per_code"].append(old_s)
        seconds["batched"].append(new_s)
        log_lik["per_code"].append(old_ll)
        log_lik["batched"].append(new_ll)
        results["log_lik_abs_diff"].append(abs(new_ll - old_ll))
        results["median_speedup"] = statistics.median(ratios)
        write_record(args.out, results)
    print(f"median speed-up over {args.rounds} round(s): {statistics.median(ratios):.1f}x")
    if args.out:
        print(f"wrote {args.out}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=55_000, help="synthetic codes (Fashion-MNIST's train)")
    p.add_argument("--dim", type=int, default=16, help="synthetic code dimension")
    p.add_argument("--k", type=int, default=10, help="components (Ghosh et al.'s 10)")
    p.add_argument("--covariance", choices=["full", "diag"], default="full")
    p.add_argument("--iters", type=int, default=100, help="EM iterations, both fits")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--codes", help="a saved (N, D) tensor of codes instead of synthetic ones")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic codes")
    p.add_argument("--out", default=None, help="JSON file of every round's numbers")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    codes = (
        load_codes(args.codes)
        if args.codes
        else synthetic_codes(args.n, args.dim, args.k, args.seed)
    )
    print(
        f"N={len(codes)} D={codes.shape[1]} K={args.k} {args.covariance}, {args.iters} EM "
        f"iterations per fit, {torch.get_num_threads()} threads"
    )
    measure(codes, args)


if __name__ == "__main__":
    main()
