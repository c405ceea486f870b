"""Optimizers of the authors' code, as factories ``factory(params, lr)`` for a phase.

The zoo's adversarial models were published with TensorFlow 1 (LMGAE's MaskAAE code) and deeppy
(Larsen et al.'s VAE-GAN), whose RMSProp is not PyTorch's. Both keep a mean square
ms <- rho ms + (1 - rho) g^2 (rho = 0.9, not torch's default alpha = 0.99) and step
theta <- theta - lr g / denominator, with

- TF1 ``RMSPropOptimizer``: denominator sqrt(ms + 1e-10), **ms starting at 1**;
- deeppy ``RMSProp``: denominator sqrt(ms) + 1e-8, ms starting at 0: exactly
  ``torch.optim.RMSprop(alpha=0.9, eps=1e-8)``.

TF1's start at ms = 1 is a warm-up that torch's RMSprop has no flag for: a gradient of size
|g| << 1 first moves its parameter by about lr |g| (plain gradient descent), not by lr, until ms
has decayed to g^2, which takes ~ln(g^2) / ln(0.9) steps (130 steps for |g| = 1e-3).
:class:`TF1RMSprop` is that optimizer, written out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

__all__ = ["OPTIMIZERS", "OptimizerName", "TF1RMSprop", "deeppy_rmsprop", "rmsprop", "tf1_rmsprop"]

Params = Iterable[nn.Parameter] | Iterable[dict[str, Any]] | nn.Module


def _params(params: Params) -> Any:
    return params.parameters() if isinstance(params, nn.Module) else params


class TF1RMSprop(Optimizer):
    """TensorFlow 1's ``RMSPropOptimizer`` (momentum 0, not centred), initial mean square 1.

    Args:
        params: Parameters or parameter groups.
        lr: Learning rate.
        rho: Decay of the mean square (TF's ``decay``).
        eps: Added to the mean square inside the square root.
        weight_decay: L2 coefficient added to the gradient (0 in TF1's optimizer).
    """

    def __init__(
        self,
        params: Any,
        lr: float,
        rho: float = 0.9,
        eps: float = 1e-10,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or not 0 <= rho < 1 or eps < 0 or weight_decay < 0:
            raise ValueError(
                f"TF1RMSprop needs lr > 0, 0 <= rho < 1, eps >= 0 and weight_decay >= 0, got "
                f"{lr}, {rho}, {eps}, {weight_decay}"
            )
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            rho, eps, lr, wd = group["rho"], group["eps"], group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad: Tensor = p.grad if wd == 0 else p.grad + wd * p
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.long)
                    state["mean_square"] = torch.ones_like(p)  # TF's slot initialiser
                state["step"] += 1
                ms = state["mean_square"]
                ms.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                p.addcdiv_(grad, (ms + eps).sqrt(), value=-lr)
        return loss


def rmsprop(params: Params, lr: float) -> Optimizer:
    """PyTorch's RMSProp at its defaults (alpha 0.99, eps 1e-8): latentzoo's recipes."""
    return torch.optim.RMSprop(_params(params), lr=lr)


def tf1_rmsprop(params: Params, lr: float) -> Optimizer:
    """TF1's RMSProp (decay 0.9, eps 1e-10 in the root, mean square from 1): MaskAAE's."""
    return TF1RMSprop(_params(params), lr=lr)


def deeppy_rmsprop(params: Params, lr: float, weight_decay: float = 0.0) -> Optimizer:
    """deeppy's RMSProp (decay 0.9, eps 1e-8 after the root), with an L2 ``weight_decay`` on the
    weights of linear and convolutional layers only (parameters of 2 or more dimensions), as
    deeppy's ``weight_decay`` of ``Affine``/``Conv`` layers: Larsen et al.'s VAE-GAN."""
    given = list(_params(params))
    if not all(isinstance(p, Tensor) for p in given):
        raise TypeError("deeppy_rmsprop takes parameters, not parameter groups")
    weights = [p for p in given if p.ndim >= 2]
    rest = [p for p in given if p.ndim < 2]
    groups: list[dict[str, Any]] = [{"params": weights, "weight_decay": weight_decay},
                                    {"params": rest}]  # fmt: skip
    return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=1e-8)


OptimizerName = Literal["rmsprop", "tf1_rmsprop", "deeppy_rmsprop"]
OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "rmsprop": rmsprop,
    "tf1_rmsprop": tf1_rmsprop,
    "deeppy_rmsprop": deeppy_rmsprop,
}
