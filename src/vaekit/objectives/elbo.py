"""Objectives as pure functions of a model's output and the data.

Every term is per example, shape ``(B,)``, in nats, summed over the data's dimensions (and over
latent dimensions for the KL). The training loss is the batch mean of ``loss``. beta, free bits
and the number of samples K are arguments, not subclasses:

- `elbo_terms`: -ELBO = E_q[-log p(x|z)] + beta * KL(q(z|x) || p(z)), averaged over the K codes;
  the KL in closed form for a diagonal q and the N(0, I) prior; a hierarchy's per-layer closed-form
  KLs (reported each); else the Monte-Carlo estimate log q(z|x) - log p(z) (a flow's log q comes
  with its code). A model's penalties (a VQ-VAE's commitment) add to the loss, not to the bound.
- `iwae_terms`: the importance-weighted bound of Burda et al. (2016),
  log 1/K sum_k p(x, z_k) / q(z_k|x), which rises with K towards log p(x).

They are registered by name in `registry.OBJECTIVES` (``train.objective``). The loop calls each as
``terms(out, x, beta, free_bits, cfg=TrainConfig, at=Progress)``: the objectives of
`vaekit.objectives.aggregate_posterior` read their weights from the config and where training is from `at`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from vaekit.errors import VaekitError
from vaekit.models.autoencoder import ModelOutput
from vaekit.models.likelihoods import standard_normal


@dataclass(frozen=True)
class Progress:
    """Where training is, for objectives whose terms depend on it: `epoch`, the (fractional) epochs
    done (None: past the end of every schedule, as validation scores); `n_data`, the training examples."""

    epoch: float | None = None
    n_data: int | None = None


def reconstruction_nll(px: Distribution, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) in nats: (B,), or (K, B) for K codes per example."""
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


def kl_monte_carlo(qz: Distribution, prior: Distribution, z: torch.Tensor) -> torch.Tensor:
    """log q(z|x) - log p(z) at the sampled codes z: (B, D) or (K, B, D) -> (B,) averaged over K.
    An unbiased estimate of the KL, for priors without a closed form."""
    kl = qz.log_prob(z) - prior.log_prob(z)
    return kl if z.dim() == 2 else kl.mean(0)


def free_bits_kl(kl_d: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The free-bits KL term, per example: (B, D) -> (B,).

    Kingma et al. (2016): sum_d max(lambda, mean_batch KL_d). Dimensions whose batch-mean KL is below
    lambda contribute the constant lambda (no gradient); the rest contribute their KL. The batch
    mean of this (B,) term equals the free-bits objective.
    """
    if free_bits <= 0:
        return kl_d.sum(-1)
    below = kl_d.detach().mean(0) < free_bits  # (D,)
    return torch.where(below, torch.full_like(kl_d, free_bits), kl_d).sum(-1)


def elbo_terms(
    out: ModelOutput,
    x: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    cfg: Any = None,
    at: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """loss = nll + beta * kl (with free bits if > 0); elbo = -(nll + kl). All (B,), nats."""
    nll = reconstruction_nll(out.px, x)
    if nll.dim() == 2:
        nll = nll.mean(0)  # (K, B) -> (B,): the K-sample average
    if out.qz is None:
        return {"loss": nll, "nll": nll}
    parts = {}
    if out.kl_parts is not None or out.log_qz is not None:  # not a diagonal Gaussian: no per-dimension KL
        if free_bits > 0:
            raise VaekitError(
                "config key 'train.free_bits': needs a diagonal Gaussian posterior (a per-dimension KL); "
                "this model's KL does not split by dimension"
            )
        if out.kl_parts is not None:  # each layer's closed-form KL given the layers above
            parts = {name: _mean_over_k(kl) for name, kl in out.kl_parts.items()}
            kl = kl_loss = torch.stack(list(parts.values())).sum(0)
        else:  # a flow: log q(z|x) (with the log-determinant) - log p(z) at the drawn code
            kl = kl_loss = _mean_over_k(out.log_qz - _log_prior(out))
    elif out.prior is None:
        kl_d = kl_per_dimension(out.qz)  # (B, D)
        kl = kl_d.sum(-1)
        kl_loss = free_bits_kl(kl_d, free_bits)
    else:  # a learned prior: the KL does not split by dimension, so free bits do not apply (RunConfig refuses them)
        kl = kl_loss = kl_monte_carlo(out.qz, out.prior, out.z)
    loss = nll + beta * kl_loss
    penalties = out.penalties or {}
    for term in penalties.values():  # outside the bound (a VQ-VAE's commitment)
        loss = loss + term
    return {"loss": loss, "nll": nll, "kl": kl, "elbo": -(nll + kl), **parts, **penalties}


def _mean_over_k(t: torch.Tensor) -> torch.Tensor:
    """(B,) or (K, B) -> (B,): the K-sample average."""
    return t if t.dim() == 1 else t.mean(0)


def _log_prior(out: ModelOutput) -> torch.Tensor:
    """log p(z) at the code, (B,) or (K, B): as the model computed it, else from its prior (N(0, I) if None)."""
    if out.log_pz is not None:
        return out.log_pz
    prior = out.prior if out.prior is not None else standard_normal(out.z.shape[-1], out.z.device, out.z.dtype)
    return prior.log_prob(out.z)


def log_weights(out: ModelOutput, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(x|z_k), log p(z_k) - log q(z_k|x)) for each code: each (K, B) (or (B,) for K = 1)."""
    log_qz = out.log_qz if out.log_qz is not None else out.qz.log_prob(out.z)
    return out.px.log_prob(x), _log_prior(out) - log_qz


def iwae_terms(
    out: ModelOutput,
    x: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    cfg: Any = None,
    at: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """loss = -IWAE bound = -(logsumexp_k log w_k - log K); elbo: the mean of log w_k. (B,), nats.

    log w_k = log p(x|z_k) + beta * (log p(z_k) - log q(z_k|x)): beta < 1 tempers the prior-to-posterior
    ratio (KL warm-up); beta = 1 is the bound of Burda et al. (2016), which `iwae` reports. The bound
    has no per-dimension KL, so `free_bits` does not apply (RunConfig refuses it with this objective)."""
    log_px_z, log_ratio = log_weights(out, x)
    if log_px_z.dim() == 1:
        log_px_z, log_ratio = log_px_z[None], log_ratio[None]  # (1, B)
    log_k = math.log(log_px_z.shape[0])
    trained = torch.logsumexp(log_px_z + beta * log_ratio, 0) - log_k
    log_w = log_px_z + log_ratio
    return {"loss": -trained, "iwae": torch.logsumexp(log_w, 0) - log_k, "elbo": log_w.mean(0)}


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors over every dimension: (B, *shape) -> (B,)."""
    return (x_hat - x).pow(2).flatten(1).sum(1)


def binary_cross_entropy(p: torch.Tensor, x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """-sum [x log p + (1 - x) log(1 - p)] over every dimension, in nats: (B, *shape) -> (B,)."""
    p = p.clamp(eps, 1 - eps)
    return -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
