"""Latent traversals: move one code coordinate at a time and watch the decoder answer.

`traversal(model, x, index)` takes the code of example `index` of x (the mean of q(z|x)) and, for
each chosen latent dimension d, decodes the codes whose d-th coordinate runs from -span to +span
standard deviations of p(z_d) around it (the others held). Rows come ordered by how much each
dimension carries:

- a VAE: by KL(q(z_d|x) || p(z_d)) averaged over the examples (for a Gaussian q and the N(0, I)
  prior in closed form; for a learned prior the per-dimension KL to N(0, 1) is used for the order
  only, and the sweep's unit is the learned prior's marginal standard deviation, in closed form
  where torch has it, else from 4,096 of its samples);
- a VAE whose q(z|x) is not a diagonal Gaussian (a flow, a hierarchy): by the variance of its
  point codes over the examples, swept in the prior's marginal standard deviations;
- a model without a prior (PCA, autoencoders): by the variance of the codes over the examples,
  which is also the sweep's unit.

By default only the active dimensions are shown (Cov_x(E[z_d|x]) > 0.01, the evaluation's
criterion, Burda et al. 2016), at most 10 of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vaekit.errors import VaekitError

ACTIVE = 0.01  # Cov_x(E[z_d|x]) above which a dimension counts as active (evaluation.active_units)


@dataclass
class Traversal:
    """images: (R, S, *shape), row r sweeping dimension dims[r] over `offsets` (S,) standard
    deviations; kl (R,) the mean KL of each row's dimension (None without a prior); scale (R,) the
    standard deviation a unit of `offsets` stands for; code (D,) the code swept around."""

    images: torch.Tensor
    dims: list[int]
    offsets: torch.Tensor
    scale: torch.Tensor
    kl: torch.Tensor | None
    activity: torch.Tensor
    code: torch.Tensor


@torch.no_grad()
def dimension_stats(
    model: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Over examples x (N, *shape): each latent dimension's mean KL (D,) (None for a model without
    a prior), its activity Cov_x(E[z_d|x]) (D,), and the standard deviation its sweep is measured
    in (D,)."""
    from vaekit.objectives.elbo import kl_per_dimension

    means, kls = [], []
    for i in range(0, len(x), batch_size):
        yb = None if y is None else y[i : i + batch_size]
        if model.diagonal_posterior:
            q = model.encode(x[i : i + batch_size], yb)
            means.append(q.mean)
            kls.append(kl_per_dimension(q))
        else:  # an autoencoder's code, or a flow's or a hierarchy's point code
            means.append(model.embed(x[i : i + batch_size], yb))
    means = torch.cat(means)  # (N, D)
    activity = means.var(0) if len(means) > 1 else torch.zeros(means.shape[1], device=means.device)
    if not model.variational:
        return None, activity, activity.sqrt().clamp_min(1e-12)
    prior = model.prior()
    try:
        scale = prior.stddev if prior is not None else torch.ones_like(activity)  # N(0, I): exactly 1
    except NotImplementedError:  # a prior without a closed-form spread: from a fixed draw
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            scale = prior.sample((4096,)).std(0)
    return (torch.cat(kls).mean(0) if kls else None), activity, scale.reshape(-1).to(activity.device)


@torch.no_grad()
def traversal(
    model: Any,
    x: torch.Tensor,
    index: int = 0,
    dims: list[int] | None = None,
    steps: int = 11,
    span: float = 3.0,
    y: torch.Tensor | None = None,
    max_rows: int = 10,
) -> Traversal:
    """Traverse the code of x[index] (x: (N, *shape), the examples the dimensions are ranked on;
    y (N,) labels for a conditional model) along `dims` (default: the active dimensions, most
    informative first, at most `max_rows`), `steps` codes from -span to +span standard deviations."""
    if model.discrete_code:
        raise VaekitError(
            f"a {type(model).__name__}'s code is a grid of codebook indices: a traversal needs a continuous code"
        )
    if not 0 <= index < len(x):
        raise VaekitError(f"--image {index}: this data has examples 0..{len(x) - 1}")
    if steps < 2 or steps > 101:
        raise VaekitError(f"--steps {steps}: must be 2..101")
    if not 0 < span <= 10:
        raise VaekitError(f"--span {span}: must be in (0, 10] standard deviations")
    kl, activity, scale = dimension_stats(model, x, y)
    d = model.latent_dim
    if dims is None:
        order = torch.argsort(kl if kl is not None else activity, descending=True, stable=True).tolist()
        dims = [i for i in order if activity[i] > ACTIVE][:max_rows] or order[: min(d, max_rows)]
    elif not dims or any(not 0 <= i < d for i in dims):
        raise VaekitError(f"--dims {','.join(map(str, dims))}: this model's codes have dimensions 0..{d - 1}")
    yb = None if y is None else y[index : index + 1]
    code = model.embed(x[index : index + 1], yb)[0]  # (D,)
    offsets = torch.linspace(-span, span, steps, device=code.device)
    rows = []
    for i in dims:
        z = code.repeat(steps, 1)  # (S, D)
        z[:, i] = code[i] + offsets * scale[i]
        rows.append(model.decode(z, None if yb is None else yb.expand(steps)).mean)
    pick = torch.tensor(dims, device=code.device)
    return Traversal(
        torch.stack(rows), list(dims), offsets, scale[pick], None if kl is None else kl[pick], activity[pick], code
    )


def refuse_index_grid(model: Any, where: str = "the model") -> None:
    """Refuse a model whose code is a grid of codebook indices (a VQ-VAE): nothing lies between two codes."""
    if model.discrete_code:
        raise VaekitError(
            f"{where} holds a {type(model).__name__}, whose code is a grid of codebook indices: "
            "there is nothing between two codes to decode; use vaekit sample or reconstruct"
        )


@torch.no_grad()
def interpolation(
    model: Any,
    x: torch.Tensor,
    a: int,
    b: int,
    steps: int = 10,
    mode: str = "linear",
    y: torch.Tensor | None = None,
    where: str = "the model",
) -> torch.Tensor:
    """Decoded codes between examples a and b of x (N, *shape): the codes of both (means of q(z|x)),
    `steps` points from one to the other ('linear', or 'slerp' along the great circle), decoded:
    (steps, *shape). A conditional model (labels y (N,)) interpolates within one class. `where` names
    the model in errors (the CLI gives the run)."""
    from vaekit.explorer.pictures import interpolate_codes

    refuse_index_grid(model, where)
    for name, i in (("a", a), ("b", b)):
        if not 0 <= i < len(x):
            raise VaekitError(f"--{name} {i}: index out of range 0..{len(x) - 1}")
    labels = y[[a, b]] if model.conditional else None
    if labels is not None and int(labels[0]) != int(labels[1]):
        raise VaekitError(
            f"--a {a} and --b {b} have different labels; a conditional model interpolates within one class"
        )
    za, zb = model.embed(x[[a, b]], labels)
    return model.decode(interpolate_codes(za, zb, steps, mode), None if labels is None else labels[0]).mean
