"""Observation models p(x|z): the decoder's output tensor becomes a distribution over x.

Each returns an ``Independent`` distribution whose ``log_prob(x)`` has shape ``(B,)``: the sum over
all of x's dimensions, in nats, with every normalising constant kept (so the Gaussian includes
``-0.5 * log(2 pi sigma^2)`` per dimension).
"""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Distribution, Independent, Normal

LIKELIHOODS = ("bernoulli", "gaussian")


def make_likelihood(name: str, params: torch.Tensor, event_dims: int, sigma: float = 1.0) -> Distribution:
    """params: (B, *shape) decoder output (Bernoulli logits or Gaussian means); event over `event_dims`."""
    if name == "bernoulli":
        return Independent(Bernoulli(logits=params, validate_args=False), event_dims, validate_args=False)
    if name == "gaussian":
        return Independent(Normal(params, sigma, validate_args=False), event_dims, validate_args=False)
    raise ValueError(f"unknown likelihood '{name}'; allowed: {', '.join(LIKELIHOODS)}")


def standard_normal(latent_dim: int, device: torch.device | str, dtype: torch.dtype = torch.float32) -> Distribution:
    """N(0, I) over D latent dimensions: event shape (D,)."""
    zeros = torch.zeros(latent_dim, device=device, dtype=dtype)
    return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1, validate_args=False)


def diagonal_normal(mean: torch.Tensor, logvar: torch.Tensor) -> Distribution:
    """q(z|x) = N(mean, diag(exp(logvar))): mean, logvar (..., D); event shape (D,)."""
    return Independent(Normal(mean, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)
