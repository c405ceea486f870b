"""class_radius on class maps whose distances are known in closed form, in 2 to 16 dimensions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from latentzoo.metrics.diversity import class_radius

N = 3000


def half_spaces(z: Tensor) -> Tensor:
    """Two classes, by the sign of z_1."""
    return torch.stack([-z[:, 0], z[:, 0]], 1)


@pytest.mark.parametrize("d", [2, 8, 16])
def test_half_spaces_give_the_mean_absolute_coordinate(d: int) -> None:
    """From z ~ N(0, I_d), the other half-space is |z_1| away: E = sqrt(2 / pi)."""
    z = torch.randn(N, d, dtype=torch.float64)
    r = class_radius(z, half_spaces)
    torch.testing.assert_close(r, z[:, 0].abs(), atol=1e-3, rtol=0)
    se = float(z[:, 0].abs().std()) / math.sqrt(N)
    assert float(r.mean()) == pytest.approx(math.sqrt(2 / math.pi), abs=4 * se)


@pytest.mark.parametrize("k", [3, 6, 10])
def test_sectors_in_the_plane(k: int) -> None:
    """K equal sectors around the origin (nearest of K unit directions): the distance from a
    point at radius r and angle delta from its sector's nearest edge is r sin(delta), so
    E = E[r] E[sin delta] = sqrt(pi / 2) * (1 - cos(pi / K)) / (pi / K)."""
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    centres = torch.stack([angles.cos(), angles.sin()], 1)  # (K, 2)
    z = torch.randn(N, 2, dtype=torch.float64)
    r = class_radius(z, lambda p: p @ centres.T)
    theta = torch.atan2(z[:, 1], z[:, 0]) % (2 * math.pi)
    half = math.pi / k
    off_centre = (theta + half) % (2 * half) - half  # angle from the sector's centre
    exact = z.norm(dim=1) * torch.sin(half - off_centre.abs())
    torch.testing.assert_close(r, exact, atol=1e-3, rtol=0)
    expected = math.sqrt(math.pi / 2) * (1 - math.cos(half)) / half
    assert float(r.mean()) == pytest.approx(expected, abs=4 * float(exact.std()) / math.sqrt(N))


def test_stripes_in_eight_dimensions_match_quadrature() -> None:
    """Five stripes across z_1 (nearest of five centres 0.8 apart): the distance is |z_1 - b|
    to the nearest boundary b; its mean under N(0, 1) by quadrature."""
    centres = 0.8 * (torch.arange(5, dtype=torch.float64) - 2)
    bounds = (centres[1:] + centres[:-1]) / 2  # (4,)
    z = torch.randn(N, 8, dtype=torch.float64)
    r = class_radius(z, lambda p: -((p[:, :1] - centres) ** 2))
    exact = (z[:, :1] - bounds).abs().min(1).values
    torch.testing.assert_close(r, exact, atol=1e-3, rtol=0)
    t = torch.linspace(-10, 10, 200_001, dtype=torch.float64)
    density = torch.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    expected = float(((t[:, None] - bounds).abs().min(1).values * density).sum() * (t[1] - t[0]))
    assert float(r.mean()) == pytest.approx(expected, abs=4 * float(exact.std()) / math.sqrt(N))


def test_without_gradients_random_directions_give_an_upper_bound() -> None:
    """Logits with zero gradient defeat DeepFool; the random directions still find the other
    half-plane, never closer than it is, and in 2-d with 64 directions close to it."""
    z = torch.randn(1000, 2, dtype=torch.float64)
    r = class_radius(z, lambda p: half_spaces(torch.sign(p)), num_directions=64)
    truth = z[:, 0].abs()
    assert bool((r >= truth - 1e-9).all())
    assert float(r.mean()) == pytest.approx(float(truth.mean()), rel=0.05)


def test_a_single_class_is_infinitely_far() -> None:
    z = torch.randn(20, 4, dtype=torch.float64)
    r = class_radius(z, lambda p: torch.stack([p[:, 0] * 0, p[:, 0] * 0 - 1], 1))
    assert torch.isinf(r).all()


def test_runs_under_inference_mode() -> None:
    """Validation and test run under inference mode; DeepFool needs its gradients anyway."""
    with torch.inference_mode():
        z = torch.randn(50, 3, dtype=torch.float64)
        r = class_radius(z, half_spaces)
    torch.testing.assert_close(r, z[:, 0].abs(), atol=1e-3, rtol=0)


def test_the_pool_estimate_it_replaces_is_far_off_in_sixteen_dimensions() -> None:
    """The nearest prior point of another class sits much farther than the boundary in 16-d."""
    from latentzoo.metrics.diversity import nearest_other_class_distance

    z = torch.randn(N, 16, dtype=torch.float64)
    pooled = float(nearest_other_class_distance(z, half_spaces(z).argmax(1)))
    assert pooled > 3 * math.sqrt(2 / math.pi)
    assert float(class_radius(z, half_spaces).mean()) < 1.1 * math.sqrt(2 / math.pi)
