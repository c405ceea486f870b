"""``FlowPrior``: a RealNVP-style flow on z as the prior of a VAE (Tomczak, "Deep Generative
Modeling", sec. 4.4.1, "flow-based prior"; Dinh, Sohl-Dickstein & Bengio 2017, "Density
estimation using Real NVP").

z = g(e), e ~ N(0, I), where g is a stack of affine couplings; each fixes the coordinates of z
where its mask is 1 and scales and shifts the others by functions of the fixed ones,

    z = m * e + (1 - m) * (e * exp(s(m * e)) + t(m * e)),

so its inverse and Jacobian determinant are explicit and

    log p(z) = log N(g^-1(z); 0, I) + sum_layers -sum_j (1 - m_j) s_j.

No closed-form KL: the VAE uses the one-sample estimate log q(z|x) - log p(z)
(:meth:`latentzoo.zoo.densities.LatentDensity.kl`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from latentzoo.zoo.densities import LOG_2PI, LatentDensity, register_density
from latentzoo.zoo.nets import mlp

__all__ = ["AffineCoupling", "FlowPrior"]


class AffineCoupling(nn.Module):
    """RealNVP's affine coupling (Dinh et al. 2017): the coordinates where ``mask`` is 1 pass
    through and condition a scale and shift of the others, z = m*e + (1-m)*(e*exp(s) + t)."""

    mask: Tensor

    def __init__(self, mask: Tensor, hidden: int) -> None:
        super().__init__()
        d = len(mask)
        self.register_buffer("mask", mask, persistent=False)  # rebuilt from the arguments
        self.net = mlp(d, 2 * d, hidden)
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)  # the identity map at initialisation
        nn.init.zeros_(last.bias)

    def scale_shift(self, fixed: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(fixed * self.mask).chunk(2, dim=1)  # each (N, D)
        free = 1 - self.mask
        return torch.tanh(s) * free, t * free  # tanh bounds each layer's scale to e^(+-1)

    def forward(self, e: Tensor) -> Tensor:
        """Base -> latent."""
        s, t = self.scale_shift(e)
        return e * torch.exp(s) + t  # s = t = 0 on the fixed coordinates

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent -> base, and log |det d e / d z|, (N,)."""
        s, t = self.scale_shift(z)
        return (z - t) * torch.exp(-s), -s.sum(1)


@register_density(name="flow")
class FlowPrior(LatentDensity):
    """A RealNVP flow on z: z = g(e), e ~ N(0, I), g a stack of affine couplings with
    alternating masks; log p(z) = log N(g^-1(z); 0, I) + log |det d g^-1 / d z| exactly, and
    sampling runs g. The flow starts as the identity (p = N(0, I)).

    For D = 1 there is nothing to condition on: each layer is a learned affine map of z, so the
    prior is a Gaussian with learned mean and variance.

    Args:
        num_layers: Coupling layers; consecutive layers fix complementary halves of z.
        hidden: Units per hidden layer of each layer's scale-and-shift MLP.
    """

    def __init__(self, num_layers: int = 4, hidden: int = 64) -> None:
        super().__init__()
        if num_layers < 1 or hidden < 1:
            raise ValueError(f"FlowPrior needs num_layers, hidden >= 1, got {num_layers}, {hidden}")
        self.init_args = {"num_layers": num_layers, "hidden": hidden}
        self.num_layers, self.hidden = num_layers, hidden

    def build(self, dim: int) -> None:
        d = dim
        parity = torch.arange(d) % 2
        masks = [
            (parity == i % 2).float() if d > 1 else torch.zeros(1) for i in range(self.num_layers)
        ]
        self.layers = nn.ModuleList(AffineCoupling(m, self.hidden) for m in masks)

    def couplings(self) -> list[AffineCoupling]:
        """The layers, base side first."""
        return [layer for layer in self.layers if isinstance(layer, AffineCoupling)]

    def log_prob(self, z: Tensor) -> Tensor:
        self.check_bound()
        logdet = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        for layer in reversed(self.couplings()):
            z, ld = layer.inverse(z)
            logdet = logdet + ld
        return -0.5 * (z.pow(2) + LOG_2PI).sum(1) + logdet

    def sample(self, n: int) -> Tensor:
        self.check_bound()
        z = torch.randn(n, self.latent_dim, device=self.device)
        for layer in self.layers:
            z = layer(z)
        return z
