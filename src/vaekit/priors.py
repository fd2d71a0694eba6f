"""Priors p(z) over the D-dimensional code, as modules that return a Distribution (event shape (D,)).

- ``standard_normal``: N(0, I). The KL to a diagonal Gaussian q(z|x) has a closed form.
- ``mog``: a learned mixture of K diagonal Gaussians.
- ``vamp``: the VampPrior (Tomczak & Welling 2018), p(z) = 1/K sum_k q(z | u_k), the encoder's
  posteriors at K learned pseudo-inputs u_k. It needs the encoder, so the model passes it in.

For the two mixtures the KL has no closed form; objectives use the single-sample Monte-Carlo
estimate log q(z|x) - log p(z) at the sampled z, which is unbiased.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

from .likelihoods import standard_normal

PRIORS = ("standard_normal", "mog", "vamp")
DEFAULT_COMPONENTS = {"mog": 10, "vamp": 500}


class StandardNormalPrior(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_ref", torch.zeros(()), persistent=False)  # follows the model's device/dtype

    def forward(self, encode: Callable | None = None) -> Distribution:
        return standard_normal(self.latent_dim, self._ref.device, self._ref.dtype)


class MixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(z; m_k, diag(exp(s_k))), all learned. Means start spread as N(0, I)."""

    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(torch.randn(components, latent_dim))
        self.logvars = nn.Parameter(torch.zeros(components, latent_dim))

    def forward(self, encode: Callable | None = None) -> Distribution:
        comp = Independent(Normal(self.means, torch.exp(0.5 * self.logvars), validate_args=False), 1, validate_args=False)
        return MixtureSameFamily(Categorical(logits=self.logits, validate_args=False), comp, validate_args=False)


class VampPrior(nn.Module):
    """p(z) = 1/K sum_k q(z | u_k) with pseudo-inputs u: (K, *shape), learned with the model."""

    def __init__(self, shape: tuple[int, ...], components: int):
        super().__init__()
        self.pseudo_inputs = nn.Parameter(0.5 + 0.01 * torch.randn(components, *shape))

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Start the pseudo-inputs at K random training examples x: (N, *shape)."""
        idx = torch.randint(len(x), (len(self.pseudo_inputs),), generator=generator, device="cpu").to(x.device)
        self.pseudo_inputs.copy_(x[idx])

    def forward(self, encode: Callable | None = None) -> Distribution:
        if encode is None:
            raise ValueError("the VampPrior needs the encoder: call it through the model's prior()")
        qu = encode(self.pseudo_inputs)  # diagonal Gaussians with batch shape (K,), event (D,)
        k = len(self.pseudo_inputs)
        mix = Categorical(logits=torch.zeros(k, device=self.pseudo_inputs.device, dtype=self.pseudo_inputs.dtype), validate_args=False)
        return MixtureSameFamily(mix, qu, validate_args=False)


def build_prior(name: str, latent_dim: int, shape: tuple[int, ...], components: int | None = None) -> nn.Module:
    if name == "standard_normal":
        return StandardNormalPrior(latent_dim)
    k = components or DEFAULT_COMPONENTS.get(name, 0)
    if name == "mog":
        return MixturePrior(latent_dim, k)
    if name == "vamp":
        return VampPrior(shape, k)
    raise ValueError(f"unknown prior '{name}'; allowed: {', '.join(PRIORS)}")
