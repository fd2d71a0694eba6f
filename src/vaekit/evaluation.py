"""Evaluation: every figure with its unit and its reduction.

`evaluate(model, x)` returns ``{name: {"value", "unit", "reduction"}}``. For every model: squared
error and binary cross-entropy of the reconstruction. For a VAE: the ELBO and its two terms, the
importance-sampled log p(x) with K samples (and its standard error over examples), bits per
dimension, KL per latent dimension and the number of active units. For PCA: the exact
probabilistic-PCA log-likelihood.

Importance sampling: log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K with
z_k ~ q(z|x). Samples are drawn in chunks and combined with a running logsumexp, so K = 5000 needs
no more memory than one chunk. In expectation the estimate lies between the ELBO (K = 1) and the
true log p(x), and it approaches log p(x) as K grows.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .data import batches
from .objectives import binary_cross_entropy, elbo_terms, kl_per_dimension, squared_error

PER_EXAMPLE = "per example (sum over dimensions, mean over examples)"


def metric(value: Any, unit: str, reduction: str = PER_EXAMPLE) -> dict[str, Any]:
    return {"value": value, "unit": unit, "reduction": reduction}


@torch.no_grad()
def importance_log_px(model: Any, x: torch.Tensor, k: int, chunk_rows: int = 16384) -> torch.Tensor:
    """Importance-sampled log p(x) for each row of x (B, *shape) with K samples from q(z|x): (B,) nats."""
    qz = model.encode(x)
    prior = model.prior()
    kc = max(1, min(k, chunk_rows // max(len(x), 1)))  # samples per chunk
    total = torch.full((len(x),), -math.inf, device=x.device, dtype=torch.float64)
    done = 0
    while done < k:
        kk = min(kc, k - done)
        z = qz.sample((kk,))  # (kk, B, D)
        px = model.decode(z.flatten(0, 1))  # over (kk*B, *shape)
        log_px_z = px.log_prob(x.expand(kk, *x.shape).flatten(0, 1)).view(kk, len(x))
        log_w = log_px_z + prior.log_prob(z) - qz.log_prob(z)  # (kk, B)
        total = torch.logaddexp(total, torch.logsumexp(log_w.double(), 0))
        done += kk
    return (total - math.log(k)).to(x.dtype)


@torch.no_grad()
def evaluate(model: Any, x: torch.Tensor, k: int = 1000, batch_size: int = 500,
             seed: int = 0, progress: bool = False) -> dict[str, dict[str, Any]]:
    """All metrics of `model` on x (N, *shape). k = 0 skips importance sampling."""
    from tqdm.auto import tqdm

    if hasattr(model, "eval"):
        model.eval()
    n, dims = len(x), x[0].numel()
    sums: dict[str, float] = {}
    log_px: list[torch.Tensor] = []
    kl_dims, means = [], []
    variational = getattr(model, "is_variational", False)
    if variational:
        torch.manual_seed(seed)
    is_bce_valid = bool(((x >= 0) & (x <= 1)).all())
    for idx in tqdm(list(batches(n, batch_size, shuffle=False, device=x.device)), disable=not progress, desc="evaluate", leave=False):
        xb = x[idx]
        x_hat = model.reconstruct(xb)
        add = {"squared_error": squared_error(x_hat, xb)}
        if is_bce_valid:
            add["bce"] = binary_cross_entropy(x_hat.clamp(0, 1), xb)
        if hasattr(model, "score_samples"):
            add["ppca_log_likelihood"] = model.score_samples(xb)
        if hasattr(model, "decode") and not hasattr(model, "score_samples"):
            out = model(xb)
            for name, v in elbo_terms(out, xb).items():
                if name != "loss":
                    add[name] = v
            if variational:
                kl_dims.append(kl_per_dimension(out.qz).sum(0))
                means.append(out.qz.mean)
                if k > 0:
                    log_px.append(importance_log_px(model, xb, k))
        for name, v in add.items():
            sums[name] = sums.get(name, 0.0) + float(v.double().sum())
    res = {"squared_error": metric(sums["squared_error"] / n, "squared error", "per example (sum over pixels, mean over examples)")}
    if "bce" in sums:
        res["bce"] = metric(sums["bce"] / n, "nats", "per example (sum over pixels, mean over examples)")
    if "ppca_log_likelihood" in sums:
        # A density over continuous values; bits/dim would need dequantised discrete data to mean anything.
        res["ppca_log_likelihood"] = metric(sums["ppca_log_likelihood"] / n, "nats", "per example (continuous density, sum over dimensions, mean over examples)")
    if "nll" in sums:
        res["reconstruction_nll"] = metric(sums["nll"] / n, "nats")
    if variational:
        res["kl"] = metric(sums["kl"] / n, "nats")
        res["elbo"] = metric(sums["elbo"] / n, "nats")
        kl_d = (torch.stack(kl_dims).sum(0) / n).tolist()
        res["kl_per_dim"] = metric(kl_d, "nats", "per latent dimension, mean over examples")
        mu = torch.cat(means)  # (N, D) posterior means
        activity = mu.var(0)  # Cov_x(E_q[z_d]), the IWAE paper's measure
        res["active_units"] = metric(int((activity > 0.01).sum()), "count", "latent dimensions with Cov_x(E_q[z_d]) > 0.01")
        if log_px:
            lp = torch.cat(log_px).double()
            res["log_px"] = metric(float(lp.mean()), "nats", f"per example, importance-sampled with K={k}, mean over examples")
            res["log_px_stderr"] = metric(float(lp.std() / math.sqrt(n)) if n > 1 else 0.0, "nats", "standard error of the mean over examples")
            res["bits_per_dim"] = metric(float(-lp.mean() / (dims * math.log(2))), "bits per dimension", "mean over examples and dimensions")
    if getattr(model, "likelihood", None) == "bernoulli" and not bool(((x == 0) | (x == 1)).all()):
        res["likelihood_note"] = metric(
            "Bernoulli likelihood on non-binary data: log p(x), ELBO and bits/dim are training objectives, "
            "not normalised likelihoods; binarise the data to compare likelihoods", "text", "applies to all nats figures")
    return res


def summary_line(results: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, m in results.items():
        v = m["value"]
        if isinstance(v, float):
            parts.append(f"{name}={v:.4f}")
        elif isinstance(v, int):
            parts.append(f"{name}={v}")
    return " ".join(parts)
