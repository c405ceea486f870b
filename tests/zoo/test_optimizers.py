"""The authors' RMSProps: TF1's (mean square from 1, eps in the root) and deeppy's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentzoo.zoo.optimizers import TF1RMSprop, deeppy_rmsprop, tf1_rmsprop


def test_tf1_rmsprop_is_tensorflows_update() -> None:
    """tf.train.RMSPropOptimizer: ms <- 0.9 ms + 0.1 g^2 from ms = 1; theta -= lr g / sqrt(ms +
    1e-10) (training_ops.cc, ApplyRMSProp with momentum 0)."""
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5))
    opt = tf1_rmsprop([w], lr=0.01)
    theta, ms = w.detach().clone(), torch.ones(5)
    for _ in range(3):
        g = torch.randn(5)
        w.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g**2
        theta = theta - 0.01 * g / torch.sqrt(ms + 1e-10)
        torch.testing.assert_close(w.detach(), theta)
    assert int(opt.state[w]["step"]) == 3


def test_tf1_rmsprop_warms_up_where_torchs_jumps() -> None:
    """A small first gradient moves TF1's parameter by ~lr |g|, torch's by ~lr / sqrt(0.01)."""
    w1, w2 = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    w1.grad, w2.grad = torch.full((1,), 1e-3), torch.full((1,), 1e-3)
    TF1RMSprop([w1], lr=0.1).step()
    torch.optim.RMSprop([w2], lr=0.1).step()
    assert float(w1) == pytest.approx(-0.1 * 1e-3 / (0.9 + 1e-7) ** 0.5)
    assert float(w2) == pytest.approx(-0.1 / 0.01**0.5, rel=1e-3)


def test_deeppy_rmsprop_decays_only_weights() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    opt = deeppy_rmsprop(net, lr=1e-3, weight_decay=1e-5)
    decayed, free = opt.param_groups
    assert {id(p) for p in decayed["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert decayed["weight_decay"] == 1e-5 and free["weight_decay"] == 0
    assert decayed["alpha"] == 0.9 and decayed["eps"] == 1e-8
    with pytest.raises(ValueError, match="TF1RMSprop needs"):
        TF1RMSprop(net.parameters(), lr=0.0)
