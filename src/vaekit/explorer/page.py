"""The latent-space explorer: one HTML page, opened from ``file://`` with no server and no network,
in which a trained model's decoder and encoder run in the browser.

`explore(model, x, y, out)` writes ``out/index.html``. The page holds the model's nets as programs
of plain operations (`webnets`) over its float32 weights, embedded as base64, and a small JavaScript
runtime (``assets/explorer/``). Why not ONNX Runtime Web: it fetches its WebAssembly at run time,
which ``file://`` pages may not do, and vaekit's nets (MLP, conv, ResNet) are a handful of
operations; plain JavaScript decodes the tour's MLP in about a millisecond (``bench/explorer.py``).

What the page shows, per model (a "panel"):

1. the codes of test examples as a map coloured by label (projected on the first two principal axes
   of the codes, by vaekit's PCA, when D > 2); pointing at the map decodes that point live;
2. one slider per latent dimension, the active ones first, ordered by KL (by code variance for a
   model without a prior), each spanning +-3 standard deviations of p(z_d) (of the codes);
3. a gallery of test images: pick two and slide between their codes (linear or spherical);
4. a drawing pad: the page encodes the drawing, shows q(z|x) on the map as 1- and 2-sigma ellipses
   and decodes its mean;
5. a sample button drawing from the model's prior or a fitted sampler (`samplers`).

Several models on one page can be *linked*: a pointer on one map decodes the same relative point
of every map (the tour's AE beside its VAE).
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from vaekit.errors import VaekitError
from vaekit.explorer.netprograms import Blob, cpu_copy, programs
from vaekit.explorer.traversal import ACTIVE, dimension_stats


def _rounded(t: torch.Tensor, digits: int = 5) -> list:
    return torch.round(t.detach().double().cpu(), decimals=digits).tolist()


def _map(codes: torch.Tensor, labels: torch.Tensor | None) -> dict:
    """codes (N, D) -> map points (N, 2), the projection (None when D = 2) and the map's extent."""
    from vaekit.models.pca import PCA

    projection = None
    if codes.shape[1] == 2:
        points = codes
    elif codes.shape[1] == 1:
        points = torch.cat([codes, torch.zeros_like(codes)], 1)
        projection = {"mean": [0.0], "axes": [[1.0], [0.0]]}
    else:
        pca = PCA(2).fit(codes.double())
        points = pca.transform(codes.double())
        projection = {"mean": _rounded(pca.mean_, 7), "axes": _rounded(pca.components_, 7)}
    lo, hi = torch.quantile(points.double(), 0.005, 0), torch.quantile(points.double(), 0.995, 0)
    pad = (hi - lo).clamp_min(1e-6) * 0.08
    extent = [float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])]
    return {
        "points": _rounded(points, 4),
        "labels": None if labels is None else labels.tolist(),
        "projection": projection,
        "extent": extent,
    }


def _dims(model: Any, x: torch.Tensor, y: torch.Tensor | None, codes: torch.Tensor) -> dict:
    """Slider order (active first, by KL or by code variance), spans and centres."""
    kl, activity, scale = dimension_stats(model, x, y)
    key = kl if kl is not None else activity
    order = sorted(range(model.latent_dim), key=lambda d: (activity[d] <= ACTIVE, -float(key[d])))
    center = codes.mean(0)
    prior = model.prior() if model.variational else None
    if prior is not None:
        try:
            center = prior.mean.reshape(-1)
        except NotImplementedError:
            pass
    pick = torch.tensor(order)
    return {
        "order": order,
        "kl": None if kl is None else _rounded(kl[pick]),
        "activity": _rounded(activity[pick], 7),
        "scale": _rounded(scale[pick], 7),
        "active": [bool(activity[d] > ACTIVE) for d in order],
        "center": _rounded(center, 6),
    }


def _sampler(model: Any, sampler: Any, blob: Blob, name: str) -> dict | None:
    """What the sample button draws from: a mixture of Gaussians (diagonal, or full with its
    Cholesky factor), or a two-stage VAE's decoder; None when the model cannot sample."""
    from vaekit.models.samplers import FittedMixture, TwoStage

    if isinstance(sampler, FittedMixture):
        return {
            "name": name,
            "kind": "mixture",
            "logits": blob.add(sampler.logits),
            "loc": blob.add(sampler.loc),
            "scale_tril": blob.add(sampler.scale_tril),
        }
    if isinstance(sampler, TwoStage):
        dec, _ = programs(sampler.inner, blob)
        return {"name": name, "kind": "two-stage", "inner_dim": sampler.inner.latent_dim, "decoder": dec}
    if sampler is not None:
        raise VaekitError(f"the explorer cannot draw from a {type(sampler).__name__}")
    if not model.can_sample:
        return None
    with torch.no_grad():
        prior = model.prior()
    if model.prior_name == "standard_normal":
        d = model.latent_dim
        return {
            "name": name,
            "kind": "mixture",
            "logits": blob.add(torch.zeros(1)),
            "loc": blob.add(torch.zeros(1, d)),
            "scale": blob.add(torch.ones(1, d)),
        }
    comp = prior.component_distribution.base_dist  # diagonal Gaussians: loc, scale (K, D)
    return {
        "name": name,
        "kind": "mixture",
        "logits": blob.add(prior.mixture_distribution.logits),
        "loc": blob.add(comp.loc),
        "scale": blob.add(comp.scale),
    }


def _gallery(x: torch.Tensor, y: torch.Tensor | None, blob: Blob, n: int) -> dict:
    """n test examples to interpolate between: the first ones of each label in turn, if labelled."""
    if y is None:
        idx = list(range(min(n, len(x))))
    else:
        idx, classes = [], sorted(set(y.tolist()))
        for rank in range(n):
            for c in classes:
                hits = (y == c).nonzero().flatten()
                if rank < len(hits) and len(idx) < n:
                    idx.append(int(hits[rank]))
            if len(idx) >= n:
                break
    pick = torch.tensor(idx, dtype=torch.long)
    return {"indices": idx, "labels": None if y is None else y[pick].tolist(), "images": blob.add(x[pick])}


@torch.no_grad()
def panel_spec(
    model: Any,
    x: torch.Tensor,
    blob: Blob,
    y: torch.Tensor | None = None,
    title: str = "model",
    note: str = "",
    sampler: Any = None,
    sampler_name: str = "prior",
    points: int = 5000,
    gallery: int = 20,
) -> dict:
    """One model's part of the page. x (N, *shape) test examples (the first `points` make the map,
    and rank the dimensions); y (N,) their labels, or None."""
    if len(x) < 2:
        raise VaekitError(f"the explorer needs at least 2 test examples; got {len(x)}")
    if points < 2:
        raise VaekitError(f"--points {points}: must be at least 2")
    model = cpu_copy(model)  # the page is built on the CPU; the caller's model keeps its device and mode
    x, y = x[:points].cpu().float(), None if y is None else y[:points].cpu()
    cond_y = y if model.conditional else None
    if model.conditional and y is None:
        raise VaekitError("this model is conditional: the explorer needs labelled test data")
    if cond_y is not None and len(cond_y) and not 0 <= int(cond_y.min()) <= int(cond_y.max()) < model.num_classes:
        raise VaekitError(
            f"labels {int(cond_y.min())} to {int(cond_y.max())}: this conditional model knows labels "
            f"0..{model.num_classes - 1}"
        )
    decoder, encoder = programs(model, blob)
    codes = torch.cat(
        [model.embed(x[i : i + 1000], None if cond_y is None else cond_y[i : i + 1000]) for i in range(0, len(x), 1000)]
    )
    lo, hi = float(x.min()), float(x.max())
    display = [0.0, 1.0] if lo >= 0 and hi <= 1 else [lo, hi]
    return {
        "title": title,
        "note": note,
        "shape": list(model.shape),
        "latent_dim": model.latent_dim,
        "num_classes": model.num_classes,
        "likelihood": model.likelihood,
        "variational": model.variational,
        "decoder": decoder,
        "encoder": encoder,
        "map": _map(codes, y),
        "dims": _dims(model, x, cond_y, codes),
        "sampler": _sampler(model, sampler, blob, sampler_name),
        "gallery": _gallery(x, y, blob, gallery),
        "display": display,
    }


def _asset(name: str) -> str:
    return resources.files("vaekit").joinpath("assets", "explorer", name).read_text(encoding="utf-8")


def page_html(panels: list[dict], blob: Blob, title: str, intro: str = "", linked: bool = False) -> str:
    """The page: spec as JSON, weights as base64, the runtime inline. Nothing is fetched."""
    spec = json.dumps({"format": "vaekit-explorer/1", "linked": linked, "models": panels}, separators=(",", ":"))
    import html

    # Every '<' of the JSON as \u003c: no string from the run (a title, a label, a path) can close
    # the script block or open a comment or a script inside it; JSON.parse reads the same text.
    return _asset("page.html").format(
        title=html.escape(title),
        intro=html.escape(intro),
        spec=spec.replace("<", "\\u003c"),
        weights=blob.base64(),
        nets_js=_asset("nets.js"),
        explorer_js=_asset("explorer.js"),
    )


def write_page(
    path: str | Path, panels: list[dict], blob: Blob, title: str, intro: str = "", linked: bool = False
) -> Path:
    """Write the page at `path`, whole or not at all."""
    from vaekit.training.checkpoints import atomic_file

    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(page_html(panels, blob, title, intro, linked), encoding="utf-8")
    return path


def check_out(out: str | Path) -> Path:
    """The folder the page goes into: refused if it names something that is not a folder."""
    from vaekit.training.checkpoints import check_out_folder

    return check_out_folder(out)


def explore(
    model: Any,
    x: torch.Tensor,
    out: str | Path,
    y: torch.Tensor | None = None,
    sampler: Any = None,
    sampler_name: str = "prior",
    title: str | None = None,
    points: int = 5000,
) -> Path:
    """Write `out`/index.html exploring `model` over test examples x (N, *shape) with labels y (N,);
    `sampler` a fitted sampler (`samplers.sampler_for`) for the sample button, None for the prior.
    Returns the page's path."""
    out = check_out(out)
    blob = Blob()
    kind = "VAE" if model.variational else type(model).__name__
    name = title or f"{kind}, {model.latent_dim}-D code"
    panel = panel_spec(
        model,
        x,
        blob,
        y,
        title=name,
        sampler=sampler,
        sampler_name=sampler_name,
        points=points,
        note="Point at the map, drag a slider, pick two images or draw: the decoder answers in the page.",
    )
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return write_page(out / "index.html", [panel], blob, f"vaekit explorer: {name}")
    except BaseException:
        if created:  # a refused or interrupted write leaves no empty folder behind
            shutil.rmtree(out, ignore_errors=True)
        raise
