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
def importance_log_px(model: Any, x: torch.Tensor, k: int, chunk_rows: int = 16384,
                      y: torch.Tensor | None = None) -> torch.Tensor:
    """Importance-sampled log p(x) (log p(x|y) for a conditional model) for each row of x (B, *shape)
    with K samples from q(z|x): (B,) nats.

    The encoder runs once; codes are decoded `chunk_rows` at a time as (kk, B, D) and scored against
    x by broadcasting (no copies of x), and the chunks are combined with a running logsumexp.
    """
    qz = model.encode(x, y)
    prior = model.prior()
    kc = max(1, min(k, chunk_rows // max(len(x), 1)))  # samples per chunk
    total = torch.full((len(x),), -math.inf, device=x.device, dtype=torch.float64)
    done = 0
    while done < k:
        kk = min(kc, k - done)
        z = qz.sample((kk,))  # (kk, B, D)
        log_w = model.decode(z, y).log_prob(x) + prior.log_prob(z) - qz.log_prob(z)  # (kk, B)
        total = torch.logaddexp(total, torch.logsumexp(log_w.double(), 0))
        done += kk
    return (total - math.log(k)).to(x.dtype)


@torch.no_grad()
def mutual_information(mean: torch.Tensor, logvar: torch.Tensor, chunk: int = 1024,
                       generator: torch.Generator | None = None) -> float:
    """I(x; z) under q, in nats, from the posteriors N(mean_n, diag(exp(logvar_n))) of N examples.

    I = E_x E_q(z|x)[log q(z|x) - log q(z)] with the aggregate posterior q(z) = 1/N sum_n q(z|x_n),
    one z per example (Hoffman & Johnson 2016). mean, logvar: (N, D). The estimate cannot exceed log N.
    Each log q(z_i|x_n) is a quadratic in z_i, so the (chunk, N) matrices are matmuls.
    """
    mean, logvar = mean.double(), logvar.double()
    n, d = mean.shape
    prec = torch.exp(-logvar)  # (N, D)
    const = -0.5 * ((mean ** 2 * prec).sum(1) + logvar.sum(1) + d * math.log(2 * math.pi))  # (N,)
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    z = mean + torch.exp(0.5 * logvar) * eps  # (N, D): one code per example
    total = 0.0
    for i in range(0, n, chunk):
        zi = z[i: i + chunk]  # (c, D)
        log_q = -0.5 * (zi ** 2) @ prec.T + zi @ (mean * prec).T + const  # (c, N): log q(z_i | x_n)
        own = log_q[torch.arange(len(zi)), torch.arange(i, i + len(zi))]  # log q(z_i | x_i)
        total += float((own - (torch.logsumexp(log_q, 1) - math.log(n))).sum())
    return total / n


def bits_per_dim(log_px: float, dims: int, dequantized: bool) -> float:
    """-log2 P(x) / dims. For a density on dequantised 8-bit data, P(x) >= p(x_deq) / 256^dims, so the
    figure adds 8 bits (an upper bound on the discrete data's bits/dim)."""
    return (-log_px + (dims * math.log(256) if dequantized else 0.0)) / (dims * math.log(2))


@torch.no_grad()
def evaluate(model: Any, x: torch.Tensor, k: int = 1000, batch_size: int = 500,
             seed: int = 0, progress: bool = False, y: torch.Tensor | None = None,
             dequantized: bool = False, ctx: Any = None) -> dict[str, dict[str, Any]]:
    """All metrics of `model` on x (N, *shape) (labels y: (N,) for a conditional model). k = 0 skips
    importance sampling. `dequantized`: x is uniformly dequantised 8-bit data (bits/dim then counts
    the 256 levels).

    Batch j draws its noise from the seed (seed, j) alone, so the result does not depend on how the
    batches are spread over processes: under torchrun (`ctx`, default: the current process group)
    rank r scores the batches j = r, r + W, ..., the per-batch results are exchanged, and every rank
    adds them up in batch order, exactly as one process does. The caller's RNG is left untouched."""
    from tqdm.auto import tqdm

    from .distributed import all_sum, current
    from .likelihoods import DISCRETE

    ctx = ctx if ctx is not None else current()
    if hasattr(model, "eval"):
        model.eval()
    n, dims = len(x), x[0].numel()
    cond = getattr(model, "conditional", False)
    if cond and y is None:
        raise ValueError("evaluating a conditional model needs the labels y")
    variational = getattr(model, "is_variational", False)
    is_bce_valid = bool(((x >= 0) & (x <= 1)).all())
    chunks = list(batches(n, batch_size, shuffle=False, device=x.device))
    names = ["squared_error"] + (["bce"] if is_bce_valid else []) + (["ppca_log_likelihood"] if hasattr(model, "score_samples") else [])
    if hasattr(model, "decode") and not hasattr(model, "score_samples"):
        names += ["nll"] + (["kl", "elbo"] if variational else [])
    d = getattr(model, "latent_dim", 0)
    # Every batch's results, in slots; a rank fills its own batches and the sum over ranks fills all.
    batch_sums = torch.zeros(len(chunks), len(names), dtype=torch.float64, device=x.device)
    kl_dims = torch.zeros(len(chunks), d, dtype=x.dtype, device=x.device)
    means = torch.zeros(n, d, dtype=x.dtype, device=x.device)
    logvars = torch.zeros(n, d, dtype=x.dtype, device=x.device)
    log_px = torch.zeros(n, dtype=x.dtype, device=x.device)
    mine = range(ctx.rank, len(chunks), ctx.world_size)
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        for j in tqdm(mine, disable=not progress or not ctx.is_main, desc="evaluate", leave=False):
            idx = chunks[j]
            torch.manual_seed(seed * 1_000_003 + j)
            xb = x[idx]
            yb = y[idx] if cond else None
            x_hat = model.reconstruct(xb, yb) if cond else model.reconstruct(xb)
            add = {"squared_error": squared_error(x_hat, xb)}
            if is_bce_valid:
                add["bce"] = binary_cross_entropy(x_hat.clamp(0, 1), xb)
            if hasattr(model, "score_samples"):
                add["ppca_log_likelihood"] = model.score_samples(xb)
            if hasattr(model, "decode") and not hasattr(model, "score_samples"):
                out = model(xb, yb)
                add.update({name: v for name, v in elbo_terms(out, xb).items() if name != "loss"})
                if variational:
                    kl_dims[j] = kl_per_dimension(out.qz).sum(0)
                    base = out.qz.base_dist
                    means[idx], logvars[idx] = base.loc, 2 * base.scale.log()
                    if k > 0:
                        log_px[idx] = importance_log_px(model, xb, k, y=yb)
            for c, name in enumerate(names):
                batch_sums[j, c] = add[name].double().sum()
    for t in (batch_sums, kl_dims, means, logvars, log_px):
        all_sum(t, ctx)
    sums = {name: 0.0 for name in names}
    for j in range(len(chunks)):  # in batch order, as a single process adds them
        for c, name in enumerate(names):
            sums[name] += float(batch_sums[j, c])
    res = {"squared_error": metric(sums["squared_error"] / n, "squared error", "per example (sum over pixels, mean over examples)")}
    if "bce" in sums:
        res["bce"] = metric(sums["bce"] / n, "nats", "per example (sum over pixels, mean over examples)")
    if "ppca_log_likelihood" in sums:
        ll = sums["ppca_log_likelihood"] / n
        res["ppca_log_likelihood"] = metric(ll, "nats", "per example (continuous density, sum over dimensions, mean over examples)")
        if dequantized:
            res["bits_per_dim"] = metric(bits_per_dim(ll, dims, True), "bits per dimension", "exact PPCA density on dequantised data, + 8 bits for the 256 levels")
    if "nll" in sums:
        res["reconstruction_nll"] = metric(sums["nll"] / n, "nats")
    discrete = getattr(model, "likelihood", None) in DISCRETE
    if variational:
        res["kl"] = metric(sums["kl"] / n, "nats")
        res["elbo"] = metric(sums["elbo"] / n, "nats")
        kl_d = (kl_dims.sum(0) / n).tolist()
        res["kl_per_dim"] = metric(kl_d, "nats", "KL(q(z_d|x) || N(0, 1)) per latent dimension, mean over examples")
        mu = means  # (N, D) posterior means
        activity = mu.var(0)  # Cov_x(E_q[z_d]), the IWAE paper's measure
        res["active_units"] = metric(int((activity > 0.01).sum()), "count", "latent dimensions with Cov_x(E_q[z_d]) > 0.01")
        g = torch.Generator(device=mu.device).manual_seed(seed)
        res["mutual_information"] = metric(mutual_information(mu, logvars, generator=g), "nats",
                                           f"I(x; z) under q, aggregate posterior over the {n} examples (at most log N = {math.log(n):.2f})")
        if k > 0:
            lp = log_px.double()
            res["log_px"] = metric(float(lp.mean()), "nats", f"per example, importance-sampled with K={k}, mean over examples")
            res["log_px_stderr"] = metric(float(lp.std() / math.sqrt(n)) if n > 1 else 0.0, "nats", "standard error of the mean over examples")
            if discrete or dequantized:
                res["bits_per_dim"] = metric(bits_per_dim(float(lp.mean()), dims, dequantized and not discrete), "bits per dimension",
                                             "mean over examples and dimensions" + (" (+ 8 bits for the 256 levels of dequantised data)" if dequantized and not discrete else ""))
    if getattr(model, "likelihood", None) == "bernoulli" and not bool(((x == 0) | (x == 1)).all()):
        res["likelihood_note"] = metric(
            "Bernoulli likelihood on non-binary data: log p(x) and the ELBO are training objectives, "
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
