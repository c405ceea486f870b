"""adam_with_gamma: learned variances get their own rate, found by type wherever they sit."""

from __future__ import annotations

import torch
from torch import nn

from latentzoo.zoo.likelihoods import GaussianGamma, adam_with_gamma


def test_every_gaussian_gamma_gets_gamma_lr_whatever_its_name() -> None:
    model = nn.ModuleDict(
        {
            "net": nn.Linear(3, 2),
            "noise": GaussianGamma(),
            "inner": nn.ModuleList([GaussianGamma()]),
        }
    )
    opt = adam_with_gamma(model, lr=1e-3, gamma_lr=1e-2)
    rest, gamma = opt.param_groups
    assert {id(p) for p in gamma["params"]} == {id(model["noise"].raw), id(model["inner"][0].raw)}
    assert {id(p) for p in rest["params"]} == {id(p) for p in model["net"].parameters()}
    assert (rest["lr"], gamma["lr"]) == (1e-3, 1e-2)


def test_a_parameter_named_like_gamma_is_not_taken_for_it() -> None:
    class Likelihood(nn.Module):  # not a GaussianGamma: its "raw" is an ordinary weight
        def __init__(self) -> None:
            super().__init__()
            self.raw = nn.Parameter(torch.zeros(2))

    model = nn.ModuleDict({"likelihood": Likelihood()})
    rest, gamma = adam_with_gamma(model, lr=1e-3, gamma_lr=1e-2).param_groups
    assert gamma["params"] == [] and len(rest["params"]) == 1
