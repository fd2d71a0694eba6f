"""`vaekit tour`: the tutorial's four steps on MNIST, measured and drawn.

PCA -> linear autoencoder (W and W^T) -> deep autoencoder -> VAE, all at a 30-number code, plus
2-D versions for the latent maps. Writes ``index.html`` (opens offline, PNGs beside it) and
``results.json``. A small classifier scores "looks like a digit" as its mean top-class probability.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from . import viz
from .checkpoint import write_text_durable
from .classifier import accuracy, digit_score, train_classifier
from .config import DataConfig, ModelConfig, TrainConfig
from .data import Data, prepare
from .evaluation import evaluate
from .models import PCA, build_model
from .devices import resolve_device
from .training import fit

# Full: <= 10 minutes on 2 CPU cores. Quick: <= 2 minutes.
SETTINGS = {
    "full": {"limit": None, "linear_epochs": 8, "deep_epochs": 12, "vae_epochs": 12, "map_epochs": 6,
             "clf_epochs": 3, "hidden": [1000, 500, 250], "map_hidden": [512, 256], "pairs": 1000, "samples": 2000, "k": 200,
             "cvae_epochs": 8},
    "quick": {"limit": 20000, "linear_epochs": 6, "deep_epochs": 10, "vae_epochs": 10, "map_epochs": 5,
              "clf_epochs": 2, "hidden": [512, 256], "map_hidden": [256], "pairs": 300, "samples": 500, "k": 50,
              "cvae_epochs": 8},
}
CODE = 30


def _train(name: str, mcfg: ModelConfig, epochs: int, data: Data, progress: bool, lr: float = 1e-3):
    torch.manual_seed(0)  # fixed initial weights: the tour's numbers do not depend on what ran before
    model = build_model(mcfg, data.shape)
    tcfg = TrainConfig(epochs=epochs, batch_size=128, lr=lr, schedule="cosine", progress=progress, eval_k=0)
    t = time.perf_counter()
    res = fit(model, data, tcfg)
    print(f"  {name}: {epochs} epochs in {time.perf_counter() - t:.0f} s", flush=True)
    return res.model, res.history


def principal_angles_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Principal angles (degrees) between the row spaces of a (q, F) and b (q', F)."""
    qa, _ = torch.linalg.qr(a.double().T)
    qb, _ = torch.linalg.qr(b.double().T)
    cos = torch.linalg.svdvals(qa.T @ qb).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


@torch.no_grad()
def variance_captured(x: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, reference: torch.Tensor) -> float:
    """Variance of x in the span of `basis` (q, F) as a fraction of that in the span of `reference` (q, F).

    Unlike the largest principal angle, this is well conditioned when eigenvalues nearly tie.
    """
    xc = x.flatten(1).double() - mean.double()
    def captured(b: torch.Tensor) -> torch.Tensor:
        q, _ = torch.linalg.qr(b.double().T)  # (F, q) orthonormal
        return (xc @ q).pow(2).sum(1).mean()
    return float(captured(basis) / captured(reference))


def moon_pairs(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n pairs of test indices (n, 2) whose digits are of different classes."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(y), (4 * n, 2), generator=g)
    keep = y.cpu()[idx[:, 0]] != y.cpu()[idx[:, 1]]
    return idx[keep][:n].to(y.device)


@torch.no_grad()
def midpoints(model: Any, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Decoded codes halfway between each pair: (P, *shape)."""
    z = model.embed(x)  # (N, D), only the rows used matter
    zm = 0.5 * (z[pairs[:, 0]] + z[pairs[:, 1]])
    return model.decode(zm).mean


@torch.no_grad()
def interpolation_rows(models: dict[str, Any], x: torch.Tensor, pairs: torch.Tensor, steps: int = 9) -> dict[str, torch.Tensor]:
    rows = {}
    for i, (a, b) in enumerate(pairs.tolist()):
        for name, m in models.items():
            za, zb = m.embed(x[[a, b]])
            rows[f"{name} #{i + 1}"] = m.decode(viz.interpolate_codes(za, zb, steps)).mean
    return rows


@torch.no_grad()
def random_codes(ae: Any, vae: Any, x_train: torch.Tensor, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Decoded random codes: AE on N(0, I), AE on a Gaussian fitted to its training codes, VAE on N(0, I)."""
    g = torch.Generator(device=x_train.device).manual_seed(seed)
    dev = x_train.device
    codes = torch.cat([ae.embed(x_train[i: i + 2000]) for i in range(0, len(x_train), 2000)])  # (N, D)
    mean, cov = codes.mean(0), torch.cov(codes.T)
    chol = torch.linalg.cholesky(cov + 1e-5 * torch.eye(len(mean), device=dev))
    e1 = torch.randn(n, ae.latent_dim, generator=g, device=dev)
    e2 = torch.randn(n, ae.latent_dim, generator=g, device=dev)
    return {
        "AE on N(0, I)": ae.decode(e1).mean,
        "AE on fitted Gaussian": ae.decode(mean + e2 @ chol.T).mean,
        "VAE on N(0, I)": vae.sample(n, generator=g),
    }


def tour(out: str | Path = "tour", quick: bool = False, device: str = "auto", data_dir: str | None = None,
         progress: bool = True, data: Data | None = None, settings: dict | None = None) -> dict[str, Any]:
    """Run the tour and write ``out/index.html`` and ``out/results.json``; return the results."""
    from .report import write_report

    t0 = time.perf_counter()
    s = {**SETTINGS["quick" if quick else "full"], **(settings or {})}
    dev = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = prepare(DataConfig(name="mnist", data_dir=data_dir, val_size=0), device=dev)
    full = data.to(dev)
    # The autoencoders train on the first `limit` images (all in the full tour); the classifier on all.
    data = dataclasses.replace(full, x_train=full.x_train[: s["limit"]], y_train=full.y_train[: s["limit"]])
    x, xt, yt = data.x_train, data.x_test, data.y_test
    print(f"vaekit tour: {len(x)} training and {len(xt)} test images on {dev}", flush=True)
    res: dict[str, Any] = {"settings": s, "device": str(dev), "train_size": len(x), "test_size": len(xt)}

    # 1. PCA by eigendecomposition; 2. the same map learned as a tied linear autoencoder (W, W^T).
    t = time.perf_counter()
    pca = PCA(CODE).fit(x)
    res["pca_fit_seconds"] = time.perf_counter() - t
    lin, lin_hist = _train("linear AE (tied W, W^T)", ModelConfig(name="linear_ae", latent_dim=CODE, tied=True), s["linear_epochs"], data, progress, lr=3e-3)
    angles = principal_angles_deg(pca.components_, lin.subspace())
    res["linear_ae_principal_angles_deg"] = {"max": float(angles.max()), "mean": float(angles.mean()),
                                             "median": float(angles.median())}
    res["linear_ae_variance_captured"] = variance_captured(x, pca.mean_, lin.subspace(), pca.components_)
    # 3. deep autoencoder; 4. VAE, both with Bernoulli outputs (cross-entropy) on grey values.
    deep, deep_hist = _train("deep AE", ModelConfig(name="ae", latent_dim=CODE, hidden=s["hidden"]), s["deep_epochs"], data, progress)
    vae, vae_hist = _train("VAE", ModelConfig(name="vae", latent_dim=CODE, hidden=s["hidden"], likelihood="bernoulli"), s["vae_epochs"], data, progress)
    models = {"PCA": pca, "linear AE": lin, "deep AE": deep, "VAE": vae}

    res["test"] = {name: evaluate(m, xt, k=s["k"] if name == "VAE" else 0) for name, m in models.items()}
    res["squared_error_30"] = {name: r["squared_error"]["value"] for name, r in res["test"].items()}
    viz.reconstruction_grid(xt[:12], {n: m.reconstruct(xt[:12]) for n, m in models.items()}, out / "reconstructions.png")
    viz.training_curves({"linear AE": lin_hist, "deep AE": deep_hist, "VAE": vae_hist}, out / "curves.png", keys=("train_loss",))

    # The classifier that scores "looks like a digit".
    t = time.perf_counter()
    clf = train_classifier(full.x_train, full.y_train, epochs=s["clf_epochs"])
    res["classifier"] = {"test_accuracy": accuracy(clf, xt, yt), "seconds": time.perf_counter() - t}
    print(f"  classifier: test accuracy {res['classifier']['test_accuracy']:.4f}", flush=True)
    scores = {"real test digits": digit_score(clf, xt)}

    # The moon experiment: halfway between two codes of different digits.
    pairs = moon_pairs(yt, s["pairs"])
    for name, m in (("AE", deep), ("VAE", vae)):
        scores[f"{name} interpolation midpoints"] = digit_score(clf, midpoints(m, xt, pairs))
    viz.labelled_rows(interpolation_rows({"AE": deep, "VAE": vae}, xt, pairs[:4]), out / "moon.png")

    # Generation from random codes.
    gen = random_codes(deep, vae, x, s["samples"])
    for name, images in gen.items():
        scores[name] = digit_score(clf, images)
    viz.labelled_rows({k: v[:16] for k, v in gen.items()}, out / "random_codes.png")
    res["digit_scores"] = scores

    res["conditional"] = conditional_vae(data, clf, s, out, progress)
    res["squared_error_2"] = latent_maps(data, s, out, progress)

    res["seconds"] = time.perf_counter() - t0
    write_text_durable(out / "results.json", json.dumps(res, indent=2, default=float) + "\n")
    write_report(res, out)
    return res


def conditional_vae(data: Data, clf: Any, s: dict, out: Path, progress: bool) -> dict[str, Any]:
    """A conditional VAE: ask for a digit, and let the classifier say which digit it got."""
    dev = data.device
    cvae, _ = _train("conditional VAE", ModelConfig(name="vae", latent_dim=16, hidden=s["map_hidden"], likelihood="bernoulli",
                                                    conditional=True, num_classes=10), s["cvae_epochs"], data, progress, lr=3e-3)
    asked = torch.arange(10, device=dev).repeat_interleave(max(1, s["samples"] // 10))  # (n,) the labels asked for
    made = cvae.sample(len(asked), generator=torch.Generator(device=dev).manual_seed(0), y=asked)
    res = {"classifier_accuracy_on_samples": accuracy(clf, made, asked), "samples": len(asked), "digit_score": digit_score(clf, made)}
    print(f"  conditional VAE: the classifier reads the asked-for digit in {res['classifier_accuracy_on_samples']:.2%} of samples", flush=True)
    rows = torch.arange(10, device=dev).repeat_interleave(10)
    viz.image_grid(cvae.sample(100, generator=torch.Generator(device=dev).manual_seed(1), y=rows), out / "conditional.png", nrow=10)
    return res


def latent_maps(data: Data, s: dict, out: Path, progress: bool) -> dict[str, float]:
    """2-D latent maps of PCA, AE and VAE with two-number codes; returns their test squared errors."""
    x, xt, yt = data.x_train, data.x_test, data.y_test
    pca2 = PCA(2).fit(x)
    ae2, _ = _train("deep AE (2-D)", ModelConfig(name="ae", latent_dim=2, hidden=s["map_hidden"]), s["map_epochs"], data, progress)
    vae2, _ = _train("VAE (2-D)", ModelConfig(name="vae", latent_dim=2, hidden=s["map_hidden"], likelihood="bernoulli"), s["map_epochs"], data, progress)
    with torch.no_grad():
        viz.latent_maps({"PCA (2-D)": (pca2.transform(xt), yt), "AE (2-D)": (ae2.embed(xt), yt),
                         "VAE (2-D)": (vae2.embed(xt), yt)}, out / "latent_maps.png")
        viz.manifold_grid(lambda z: vae2.decode(z).mean, out / "vae_manifold.png", n=15, device=data.device)
    return {n: float(((m.reconstruct(xt) - xt) ** 2).flatten(1).sum(1).mean())
            for n, m in (("PCA", pca2), ("deep AE", ae2), ("VAE", vae2))}
