"""FD-infinity against the closed-form Fréchet distance of two Gaussians."""

from __future__ import annotations

import pytest
import torch

from latentzoo.metrics.fd_infinity import fd_infinity, fid_by_subset_size
from latentzoo.metrics.frechet import frechet_distance, frechet_distance_between


def gaussians(d: int, seed: int) -> tuple[Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    b = torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5
    mu2 = 0.1 * torch.randn(d, generator=gen, dtype=torch.float64)
    return a, b, mu2


from torch import Tensor  # noqa: E402


@pytest.mark.parametrize("n", [500, 2000, 10_000])
def test_fd_infinity_finds_the_closed_form_distance_where_fid_is_biased(n: int) -> None:
    d = 64
    a, b, mu2 = gaussians(d, seed=n)
    truth = float(frechet_distance(torch.zeros(d), a @ a.T, mu2, b @ b.T))
    errors_inf, errors_fid = [], []
    for seed in range(3):
        gen = torch.Generator().manual_seed(100 + seed)
        real = torch.randn(n, d, generator=gen, dtype=torch.float64) @ a.T
        fake = torch.randn(n, d, generator=gen, dtype=torch.float64) @ b.T + mu2
        errors_fid.append(float(frechet_distance_between(real, fake)) - truth)
        errors_inf.append(float(fd_infinity(real, fake, seed=seed)["fd_inf"]) - truth)
    bias_fid = sum(errors_fid) / 3
    bias_inf = sum(errors_inf) / 3
    # FID at n is biased upward by ~ tr(S1 + S2) d / n; FD-inf removes most of it.
    assert bias_fid > 0.5 * (d / n) * truth**0  # the bias is there to remove
    assert abs(bias_inf) < 0.25 * bias_fid, (bias_inf, bias_fid)


def test_the_subset_sizes_span_a_fifth_to_all() -> None:
    x = torch.randn(300, 4, dtype=torch.float64)
    sizes, fids = fid_by_subset_size(x, x + 1, points=5, smallest=0.2, seed=0)
    assert sizes.tolist() == [60.0, 120.0, 180.0, 240.0, 300.0] and len(fids) == 5
