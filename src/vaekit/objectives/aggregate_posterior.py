"""Objectives that shape the aggregate posterior q(z) = E_data[q(z|x)] towards independent codes.

Each is a function like `objectives.elbo_terms` (registered in `registry.OBJECTIVES`), returning
per-example terms (B,) with a ``"loss"``; the KL pieces are in nats:

- ``btcvae``: the β-TC-VAE (Chen et al. 2018). At the drawn code z of each x,
  log q(z|x) - log p(z) = [log q(z|x) - log q(z)] + [log q(z) - prod_d q(z_d)] + [sum_d log q(z_d) - log p(z_d)]
  (index-code MI + total correlation + dimension-wise KL), with log q(z) and log q(z_d) estimated
  from the minibatch, and loss = nll + beta * (mi + train.tc_beta * tc + dim_kl). Estimators
  (`train.tc_estimator`): ``mss``, minibatch stratified sampling, whose weights for each code sum
  to 1 (its own x 1/N, one other (N - M) / (N M), the rest 1/M, M = B - 1), so log q(z) is
  estimated as a density; ``mws``, minibatch weighted sampling as published, log q(z) ~
  logsumexp_j log q(z|x_j) - log(N B), whose densities are not normalised (with the whole data as
  the batch each is 1/N of q(z)), so its TC is offset by up to (D - 1) log N (tested); the
  gradients it trains with are the paper's. N is the number of training examples.
- ``infovae``: InfoVAE / WAE-MMD (Zhao et al. 2019; Tolstikhin et al. 2018): the ELBO's terms plus
  train.mmd_weight * MMD^2(q(z), p(z)), the unbiased estimate between the batch's codes and as many
  prior draws with the inverse multiquadratic kernel k(a, b) = C / (C + |a - b|^2), C = 2 D.
  InfoVAE's (alpha, lambda) are train.beta = 1 - alpha and train.mmd_weight = alpha + lambda - 1.
  MMD^2 is a squared distance between distributions, not nats.
- ``capacity``: the annealed-capacity β-VAE (Burgess et al. 2018): loss = nll + beta * |KL - C| (the batch's mean KL),
  with the capacity C rising linearly from 0 to train.capacity nats over train.capacity_epochs
  (train.beta is their gamma).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import Independent, Normal

from vaekit.errors import VaekitError
from vaekit.models.autoencoder import ModelOutput
from vaekit.objectives.elbo import Progress, elbo_terms

LOG_2PI = math.log(2 * math.pi)


def pairwise_log_q(loc: torch.Tensor, scale: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log q(z_i,d | x_j) of every code i under every example j's diagonal Gaussian, per dimension.
    Shape: loc, scale (B, D), z (B, D) -> (B_i, B_j, D), nats."""
    u = (z[:, None, :] - loc[None]) / scale[None]
    return -0.5 * (u * u + LOG_2PI) - scale.log()[None]


def log_importance_weights(b: int, n_data: int, estimator: str, device=None, dtype=None) -> torch.Tensor:
    """log W (B, B): the weight of example j in the estimate q(z_i) ~ sum_j W_ij q(z_i | x_j)."""
    if estimator == "mws" or b < 2:  # one code cannot be stratified: minibatch weighting
        return torch.full((b, b), -math.log(n_data * b), device=device, dtype=dtype)
    m = b - 1
    w = torch.full((b, b), 1.0 / m, device=device, dtype=dtype)
    idx = torch.arange(b, device=device)
    w[idx, idx] = 1.0 / n_data
    w[idx, (idx + 1) % b] = (n_data - m) / (n_data * m)  # the stratum that stands for the rest of the data
    return w.log()


def tc_decomposition(out: ModelOutput, n_data: int, estimator: str = "mss") -> dict[str, torch.Tensor]:
    """The index-code MI, total correlation and dimension-wise KL at the drawn codes, each (B,) nats.
    Needs a diagonal Gaussian q(z|x) and the N(0, I) prior (the dimension-wise KL needs p to factorise)."""
    if not (isinstance(out.qz, Independent) and isinstance(out.qz.base_dist, Normal)) or out.log_qz is not None:
        raise VaekitError(
            "train.objective = 'btcvae' needs a diagonal Gaussian q(z|x): a 'vae' with model.posterior = 'diagonal'"
        )
    if out.prior is not None:
        raise VaekitError(
            "train.objective = 'btcvae' needs the N(0, I) prior (model.prior = 'standard_normal'): "
            "its dimension-wise KL needs a prior that factorises over dimensions"
        )
    base = out.qz.base_dist
    zs = out.z if out.z.dim() == 3 else out.z[None]  # (K, B, D)
    parts = []
    for z in zs:
        pairs = pairwise_log_q(base.loc, base.scale, z)  # (B, B, D)
        log_w = log_importance_weights(len(z), n_data, estimator, z.device, z.dtype)
        log_qzx = pairs.diagonal(dim1=0, dim2=1).sum(0)  # (B,): each code under its own x
        log_qz = torch.logsumexp(log_w + pairs.sum(-1), 1)
        log_qz_dims = torch.logsumexp(log_w[..., None] + pairs, 1).sum(-1)
        log_pz = (-0.5 * (z * z + LOG_2PI)).sum(-1)
        parts.append(torch.stack([log_qzx - log_qz, log_qz - log_qz_dims, log_qz_dims - log_pz]))
    mi, tc, dim_kl = torch.stack(parts).mean(0)  # averaged over the K codes
    return {"mi": mi, "tc": tc, "dim_kl": dim_kl}


def btcvae_terms(
    out: ModelOutput,
    x: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    cfg: Any = None,
    at: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """loss = nll + beta * (mi + tc_beta * tc + dim_kl); kl and elbo as the ELBO reports them. (B,), nats."""
    if at is None or at.n_data is None:
        raise VaekitError("train.objective = 'btcvae' needs the number of training examples (the loop passes it)")
    terms = elbo_terms(out, x, beta, free_bits)
    parts = tc_decomposition(out, at.n_data, cfg.tc_estimator if cfg is not None else "mss")
    tc_beta = cfg.tc_beta if cfg is not None else 1.0
    loss = terms["nll"] + beta * (parts["mi"] + tc_beta * parts["tc"] + parts["dim_kl"])
    return {**terms, **parts, "loss": loss}


def imq_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a_i, b_j) = C / (C + |a_i - b_j|^2), C = 2 D: (N, D), (M, D) -> (N, M)."""
    c = 2.0 * a.shape[-1]
    return c / (c + torch.cdist(a, b).pow(2))


def mmd2(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The unbiased estimate of MMD^2 between samples z (N, D) and w (M, D), IMQ kernel: a 0-dim tensor."""
    n, m = len(z), len(w)
    if n < 2 or m < 2:
        return z.new_zeros(())
    kzz, kww = imq_kernel(z, z), imq_kernel(w, w)
    off = lambda k, s: (k.sum() - k.diagonal().sum()) / (s * (s - 1))
    return off(kzz, n) + off(kww, m) - 2 * imq_kernel(z, w).mean()


def infovae_terms(
    out: ModelOutput,
    x: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    cfg: Any = None,
    at: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """The ELBO's terms plus mmd_weight * MMD^2 between the batch's codes and prior draws; (B,)."""
    terms = elbo_terms(out, x, beta, free_bits)
    if out.qz is None:
        raise VaekitError("train.objective = 'infovae' needs a model with a code distribution (a VAE)")
    z = out.z.reshape(-1, out.z.shape[-1])  # (K B, D): every code drawn
    prior = (
        out.prior if out.prior is not None else Independent(Normal(torch.zeros_like(z[0]), torch.ones_like(z[0])), 1)
    )
    mmd = mmd2(z, prior.sample((len(z),)))
    weight = cfg.mmd_weight if cfg is not None else 1.0
    b = len(terms["nll"])
    return {**terms, "mmd": mmd.expand(b), "loss": terms["loss"] + weight * mmd}


def capacity_at(cfg: Any, at: Progress | None) -> float:
    """C(t) = capacity * min(1, epoch / capacity_epochs): the capacity in nats (all of it past the schedule)."""
    if at is None or at.epoch is None or cfg.capacity_epochs <= 0:
        return cfg.capacity
    return cfg.capacity * min(1.0, at.epoch / cfg.capacity_epochs)


def capacity_terms(
    out: ModelOutput,
    x: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    cfg: Any = None,
    at: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """loss = nll + beta * |KL - C(t)| with the batch's mean KL, as Burgess et al. (2018) and
    disentanglement_lib: per example nll + beta * s (KL - C), s the sign of (mean KL - C), so that the
    batch mean is exact. The ELBO's terms and the capacity; (B,), nats."""
    if cfg is None:
        raise VaekitError("train.objective = 'capacity' needs train.capacity (the loop passes the config)")
    terms = elbo_terms(out, x, 1.0, 0.0)
    if "kl" not in terms:
        raise VaekitError("train.objective = 'capacity' needs a model with a KL term (a VAE)")
    c = capacity_at(cfg, at)
    kl = terms["kl"]
    sign = torch.sign(kl.detach().mean() - c)
    penalties = sum((out.penalties or {}).values(), torch.zeros_like(kl))  # outside the bound, as in the ELBO
    return {**terms, "capacity": torch.full_like(kl, c), "loss": terms["nll"] + beta * sign * (kl - c) + penalties}
