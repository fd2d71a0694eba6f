"""Objectives as pure functions of a model's output and the data.

Every term is per example, shape ``(B,)``, in nats, summed over the data's dimensions (and over
latent dimensions for the KL). The training loss is the batch mean of ``loss``; beta and the KL
warm-up are arguments, not subclasses.
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from .models.autoencoder import ModelOutput


def reconstruction_nll(px: Distribution, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) in nats: (B,)."""
    return -px.log_prob(x)


def kl_standard_normal(qz: Distribution) -> torch.Tensor:
    """Closed-form KL(q(z|x) || N(0, I)) in nats, summed over latent dimensions: (B,).

    For a diagonal Gaussian with mean m and log-variance s this is
    1/2 sum_d (exp(s_d) - (1 + s_d) + m_d^2).
    """
    return kl_per_dimension(qz).sum(-1)


def kl_per_dimension(qz: Distribution) -> torch.Tensor:
    """KL(q(z_d|x) || N(0, 1)) for each latent dimension, in nats: (B, D)."""
    base = qz.base_dist if isinstance(qz, Independent) else qz
    prior = Normal(torch.zeros_like(base.loc), torch.ones_like(base.scale), validate_args=False)
    return kl_divergence(base, prior)


def elbo_terms(out: ModelOutput, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Negative ELBO with a beta weight: loss = nll + beta * kl; also `elbo` = -(nll + kl). All (B,)."""
    nll = reconstruction_nll(out.px, x)
    if out.qz is None:
        return {"loss": nll, "nll": nll}
    kl = kl_standard_normal(out.qz)
    return {"loss": nll + beta * kl, "nll": nll, "kl": kl, "elbo": -(nll + kl)}


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over every dimension: (B, *shape) -> (B,)."""
    return (x_hat - x).pow(2).flatten(1).sum(1)


def binary_cross_entropy(p: torch.Tensor, x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """-sum [x log p + (1 - x) log(1 - p)] over every dimension, in nats: (B, *shape) -> (B,)."""
    p = p.clamp(eps, 1 - eps)
    return -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
