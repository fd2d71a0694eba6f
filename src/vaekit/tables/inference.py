"""What a trained tabular VAE answers, by importance sampling with q(z|x) as the proposal.

For a row x with observed cells x_o, K codes z_k ~ q(z|x_o) get weights
w_k = p(x_o|z_k) p(z_k) / q(z_k|x_o), normalised to w~_k (Mattei & Frellsen 2019):

- score: log p(x_o) ~ log (1/K) sum_k w_k, with the delta-method standard error
  sqrt((K sum w~^2 - 1) / (K - 1)) (the relative error of the mean weight); each column's share is
  sum_k w~_k log p(x_j|z_k), and what the shares leave of log p(x_o) is the code's part
  (log p(z) - log q(z|x) averaged, plus the bound's gap);
- single imputation: a number's E[x_j | x_o] = sum_k w~_k E[x_j|z_k] in the user's units, kept
  within the column's observed range; a label's most probable value under sum_k w~_k p(x_j|z_k);
- multiple imputation: sampling-importance-resampling: k ~ w~, then x_m ~ p(x_m|z_k), M times;
- conditional synthesis (`where`): codes from the prior weighted by p(fixed cells|z), resampled
  (importance resampling; the model is not trained conditionally).

Rows are scored in chunks so that K codes times the decoder's outputs stay near 2^22 numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vaekit.tables.columns import LABELLED, model_units
from vaekit.tables.model import TabularVAE

CHUNK_NUMBERS = 1 << 22


def _rows_per_chunk(model: TabularVAE, k: int) -> int:
    return max(1, CHUNK_NUMBERS // max(1, k * (model.observation.n_params + model.latent_dim)))


@torch.no_grad()
def weighted(model: TabularVAE, x: torch.Tensor, k: int):
    """codes z (K, B, D), p(x|z) with batch (K, B), cell log-probs (K, B, F) and log w (K, B)."""
    qz = model.encode(x)
    z = qz.sample((k,))
    px = model.decode(z)
    cells = px.cell_log_prob(x)
    log_w = cells.sum(-1) + model.prior().log_prob(z) - qz.log_prob(z)
    return z, px, cells, log_w


@dataclass
class Scores:
    """Per row: log p(observed cells) (N,), its standard error (N,), and each column's share (N, F), nats."""

    log_px: np.ndarray
    se: np.ndarray
    shares: np.ndarray


@torch.no_grad()
def score(model: TabularVAE, x: torch.Tensor, k: int) -> Scores:
    out, step = [], _rows_per_chunk(model, k)
    for i in range(0, len(x), step):
        _, _, cells, log_w = weighted(model, x[i : i + step], k)
        log_w = log_w.double()
        w = torch.softmax(log_w, 0)  # (K, B)
        log_px = torch.logsumexp(log_w, 0) - math.log(k)
        rel = ((k * (w * w).sum(0) - 1).clamp_min(0) / max(k - 1, 1)).sqrt()
        shares = (w[..., None] * cells.double()).sum(0)  # (B, F)
        out.append((log_px, rel, shares))
    cat = lambda j: torch.cat([o[j] for o in out]).numpy()
    return Scores(cat(0), cat(1), cat(2))


@torch.no_grad()
def impute(model: TabularVAE, x: torch.Tensor, k: int, multiple: int = 0) -> np.ndarray:
    """x (N, F) with its missing cells filled: (N, F) model units, or (M, N, F) for M multiple
    imputations. Observed cells are kept as they are."""
    fills, step = [], _rows_per_chunk(model, k)
    for i in range(0, len(x), step):
        xb = x[i : i + step]
        _, px, _, log_w = weighted(model, xb, k)
        w = torch.softmax(log_w.double(), 0)  # (K, B)
        fills.append(_resampled(px, w, multiple) if multiple else _expected(model, px, w))
    filled = torch.cat(fills, -2).to(x.dtype)  # (N, F) or (M, N, F)
    seen = ~torch.isnan(x)
    return torch.where(seen, x, filled).numpy()


def _expected(model: TabularVAE, px, w: torch.Tensor) -> torch.Tensor:
    """The weighted mean (numbers) or most probable label (labels) of each column: (B, F) model units."""
    cols = []
    for col, e in zip(model.schema.columns, px.expected_columns()):
        e = e.double()  # (K, B) or (K, B, L)
        if col.kind in LABELLED:
            cols.append((w[..., None] * e).sum(0).argmax(-1).double())
        else:  # the weighted mean, kept within the column's observed range: a heavy tail's mean
            # (a log-normal's exp(mu + s^2 / 2) with a wide s) may lie far outside it
            mean = np.clip((w * e).sum(0).numpy(), col.low, col.high)
            cols.append(torch.from_numpy(model_units(col, mean)))
    return torch.stack(cols, -1)


def _resampled(px, w: torch.Tensor, m: int) -> torch.Tensor:
    """M draws per row: a code k ~ w~ (sampling-importance-resampling), then the row from p(x|z_k)."""
    picks = torch.multinomial(w.T.float(), m, replacement=True).T  # (M, B) code indices
    params = px.params  # (K, B, P)
    rows = torch.arange(params.shape[1])
    chosen = params[picks, rows[None, :]]  # (M, B, P)
    return type(px)(chosen, px.obs).sample()


@torch.no_grad()
def conditional_codes(
    model: TabularVAE, fixed: torch.Tensor, n: int, draw: Any, oversample: int = 20
) -> tuple[torch.Tensor, float]:
    """n codes from s(z | fixed cells) by importance resampling from a code sampler s (`draw(k)`
    gives k codes: the prior or an ex-post sampler); `fixed` (F,) is NaN except the fixed cells.
    Returns the codes (n, D) and the effective sample size of the weights."""
    pool = n * oversample
    z = draw(pool)  # (pool, D)
    log_w = model.decode(z).log_prob(fixed.expand(pool, -1)).double()
    w = torch.softmax(log_w, 0)
    ess = float(1 / (w * w).sum())
    return z[torch.multinomial(w.float(), n, replacement=True)], ess
