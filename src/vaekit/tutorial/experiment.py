"""`vaekit tour`: the tutorial's four steps on MNIST, measured and drawn.

PCA -> linear autoencoder (W and W^T) -> deep autoencoder -> VAE, all at a 30-number code, plus a
conditional VAE and 2-D versions for the latent maps. Generation is measured as the field measures
it: Fréchet distance, KID, precision and recall in the space of vaekit's shipped MNIST feature
network (`vaekit.metrics.features`), beside the floor (real test images against other real test images),
for the AE's and the VAE's decoders on N(0, I), on codes from ex-post samplers fitted to the
training codes (`vaekit.models.samplers`), on interpolation midpoints, and for the conditional VAE. The
same network's top-class probability is the "digit score" (no classifier is trained per run).
Writes ``index.html`` (opens offline, PNGs beside it) and ``results.json``.

The six models are independent, so they train two at a time in worker processes
(`vaekit.training.lanes`); the tour says which step it is on and how long the whole run should take.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data.prepared import Data, prepare
from vaekit.errors import VaekitError
from vaekit.explorer import pictures as viz
from vaekit.metrics.evaluation import evaluate
from vaekit.models import PCA
from vaekit.training.checkpoints import check_out_folder, write_text_durable
from vaekit.training.devices import resolve_device
from vaekit.training.lanes import Job, train_side_by_side
from vaekit.tutorial.tables import (
    AE_GAUSSIAN,
    AE_GMM,
    AE_MIDPOINTS,
    AE_PRIOR,
    CONDITIONAL_VAE,
    CVAE,
    DEEP_AE,
    DEEP_AE_2D,
    DIGIT_SCORE_SETS,
    FLOOR,
    IMAGE_SETS,
    LINEAR_AE,
    REAL_DIGITS,
    VAE,
    VAE_2D,
    VAE_GMM,
    VAE_MIDPOINTS,
    VAE_PRIOR,
    GenerationRow,
    GenerationTable,
)
from vaekit.tutorial.tables import PCA as PCA_NAME

# Full: <= 5 minutes on 2 CPU cores. Quick: <= 60 s. `expected`: each step's seconds on the
# reference machine (2-core AMD EPYC, torch 2.13.0+cpu), for the running estimate of the total.
SETTINGS = {
    "full": {
        "limit": None,
        "hidden": [1000, 500, 250],
        "map_hidden": [512, 256],
        "batch_size": 128,
        "linear_epochs": 8,
        "deep_epochs": 8,
        "vae_epochs": 8,
        "cvae_epochs": 8,
        "map_epochs": 4,
        "lr": 2e-3,
        "warmup_epochs": 0.3,
        "n": 5000,
        "kid_subsets": 100,
        "k": 50,
        "pairs_shown": 4,
        "lanes": 2,
        "expected": {"data": 4, "train": 205, "measure": 17, "generation": 45, "pictures": 1},
    },
    "quick": {
        "limit": 20000,
        "hidden": [512, 256],
        "map_hidden": [256],
        "batch_size": 128,
        "linear_epochs": 6,
        "deep_epochs": 5,
        "vae_epochs": 5,
        "cvae_epochs": 6,
        "map_epochs": 4,
        "lr": 2e-3,
        "warmup_epochs": 0.3,
        "n": 2000,
        "kid_subsets": 50,
        "k": 20,
        "pairs_shown": 4,
        "lanes": 2,
        "expected": {"data": 3, "train": 23, "measure": 6, "generation": 17, "pictures": 1},
    },
}
CODE = 30
STEPS = {
    "data": "load MNIST; PCA by eigendecomposition (30 and 2 components)",
    "train": "train the linear AE, deep AE, VAE, conditional VAE and the 2-D AE and VAE",
    "measure": "test squared errors; the VAE's ELBO and importance-sampled log p(x)",
    "generation": "samplers fitted to the codes; Fréchet distance, KID, precision, recall of 9 image sets",
    "pictures": "pictures and the page",
}


class Steps:
    """Says which step the tour is on and how long the whole run should take: each step's expected
    seconds on the reference machine, scaled by how much slower or faster this machine ran the
    steps done so far."""

    def __init__(self, expected: dict[str, float]) -> None:
        self.expected, self.names = expected, list(expected)
        self.t0 = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.current: str | None = None

    def _end(self) -> None:
        if self.current is not None:
            self.seconds[self.current] = time.perf_counter() - self.step_t0

    def left(self) -> float:
        """Seconds still expected, the current step's included."""
        done_ref = sum(self.expected[n] for n in self.seconds)
        pace = sum(self.seconds.values()) / done_ref if done_ref >= 2 else 1.0
        return pace * sum(self.expected[n] for n in self.names if n not in self.seconds)

    def begin(self, name: str, what: str) -> None:
        self._end()
        self.current, self.step_t0 = name, time.perf_counter()
        elapsed = time.perf_counter() - self.t0
        print(
            f"step {self.names.index(name) + 1} of {len(self.names)}: {what} "
            f"[{elapsed:.0f} s so far, about {self.left():.0f} s to go]",
            flush=True,
        )

    def finish(self) -> dict[str, float]:
        self._end()
        self.current = None
        return self.seconds


def _jobs(s: dict, progress: bool = False) -> list[Job]:
    """The tour's six models, the longest first (workers take them in this order; progress bars
    show only when they train one after another, in this process)."""

    def train(epochs: int, lr: float = s["lr"], warmup: float = s["warmup_epochs"]) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            batch_size=s["batch_size"],
            lr=lr,
            schedule="cosine",
            warmup_epochs=warmup,
            progress=progress,
            eval_k=0,
        )

    bern = {"likelihood": "bernoulli"}
    return [
        # The AE minimises the squared error it is measured by (a Gaussian likelihood, sigma = 1), with
        # ELU units: in 8 epochs, test squared error 6.72 against 7.39 with ReLU (and 7.94 for the
        # 12-epoch ReLU cross-entropy recipe before). The VAE keeps ReLU: with ELU it reconstructs
        # better (8.75) but its samples score lower (digit score 0.889 against 0.925).
        Job(
            DEEP_AE,
            ModelConfig(name="ae", latent_dim=CODE, hidden=s["hidden"], likelihood="gaussian", activation="elu"),
            train(s["deep_epochs"]),
        ),
        Job(VAE, ModelConfig(name="vae", latent_dim=CODE, hidden=s["hidden"], **bern), train(s["vae_epochs"])),
        Job(
            CONDITIONAL_VAE,
            ModelConfig(name="vae", latent_dim=16, hidden=s["map_hidden"], conditional=True, num_classes=10, **bern),
            train(s["cvae_epochs"], lr=3e-3),
        ),
        Job(VAE_2D, ModelConfig(name="vae", latent_dim=2, hidden=s["map_hidden"], **bern), train(s["map_epochs"])),
        Job(DEEP_AE_2D, ModelConfig(name="ae", latent_dim=2, hidden=s["map_hidden"]), train(s["map_epochs"])),
        Job(
            LINEAR_AE,
            ModelConfig(name="linear_ae", latent_dim=CODE, tied=True),
            train(s["linear_epochs"], lr=3e-3, warmup=0.0),
        ),
    ]


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
def interpolation_rows(
    models: dict[str, Any], x: torch.Tensor, pairs: torch.Tensor, steps: int = 9
) -> dict[str, torch.Tensor]:
    rows = {}
    for i, (a, b) in enumerate(pairs.tolist()):
        for name, m in models.items():
            za, zb = m.embed(x[[a, b]])
            rows[f"{name} #{i + 1}"] = m.decode(viz.interpolate_codes(za, zb, steps)).mean
    return rows


def tour(
    out: str | Path = "tour",
    quick: bool = False,
    device: str = "auto",
    data_dir: str | None = None,
    progress: bool = True,
    data: Data | None = None,
    settings: dict | None = None,
    features: str | Path | None = None,
) -> dict[str, Any]:
    """Run the tour and write ``out/index.html`` and ``out/results.json``; return the results.
    `features`: the feature network (`vaekit.metrics.features.load_features`; default the shipped MNIST one)."""
    from vaekit.metrics.features import FeatureNet, MnistFeatureNet, load_features
    from vaekit.metrics.generation import require_metrics
    from vaekit.tutorial.report import write_report

    s = {**SETTINGS["quick" if quick else "full"], **(settings or {})}
    steps = Steps(s["expected"])
    dev = resolve_device(device)
    require_metrics()  # first: a missing extra or feature network fails before anything is written
    net, net_name, digest = load_features(features, dev)
    if not isinstance(net, (MnistFeatureNet, FeatureNet)):
        raise VaekitError(
            f"the tour scores digits with a classifier's features and head; '{features}' has no head "
            "(use the shipped network or one from 'vaekit features train')"
        )
    out = check_out_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"vaekit tour{' --quick' if quick else ''}: {len(steps.names)} steps, about {steps.left():.0f} s on 2 CPU "
        f"cores "
        f"(the estimate follows this machine's pace as the steps finish)",
        flush=True,
    )
    steps.begin("data", STEPS["data"])
    if data is None:
        data = prepare(DataConfig(name="mnist", data_dir=data_dir, val_size=0), device=dev)
    full = data.to(dev)
    # The models train on the first `limit` images (all in the full tour).
    data = dataclasses.replace(full, x_train=full.x_train[: s["limit"]], y_train=full.y_train[: s["limit"]])
    x, xt = data.x_train, data.x_test
    res: dict[str, Any] = {"settings": s, "device": str(dev), "train_size": len(x), "test_size": len(xt)}
    t = time.perf_counter()
    pca, pca2 = PCA(CODE).fit(x), PCA(2).fit(x)
    res["pca_fit_seconds"] = time.perf_counter() - t

    jobs = _jobs(s, progress)
    steps.begin("train", f"{STEPS['train']}, {min(s['lanes'], len(jobs))} at a time")
    trained = train_side_by_side(
        jobs,
        data,
        lanes=s["lanes"] if dev.type == "cpu" else 1,
        on_done=lambda job, done: print(f"  {job.name}: {job.train.epochs} epochs in {done.seconds:.0f} s", flush=True),
    )
    m = {name: done.model.to(dev) for name, done in trained.items()}
    res["training_seconds"] = {name: done.seconds for name, done in trained.items()}

    steps.begin("measure", STEPS["measure"])
    models = {PCA_NAME: pca, LINEAR_AE: m[LINEAR_AE], DEEP_AE: m[DEEP_AE], VAE: m[VAE]}
    res.update(measure(models, pca, pca2, m, x, xt, s["k"]))

    steps.begin("generation", STEPS["generation"])
    images = generation_sets(m, data, s, test_halves(len(xt), s["n"])[1])
    res.update(generation(net, net_name, digest, images, data, s))

    steps.begin("pictures", STEPS["pictures"])
    pictures(m, models, pca2, data, images, trained, s, out)
    res["seconds_by_step"] = steps.finish()
    res["seconds"] = time.perf_counter() - steps.t0
    write_text_durable(out / "results.json", json.dumps(res, indent=2, default=float) + "\n")
    write_report(res, out)
    return res


# The old names of the image sets' digit scores (results.json's "digit_scores"), kept for one release.
DIGIT_SCORE_NAMES = {s.digit_score_name: s.label for s in DIGIT_SCORE_SETS}


def measure(
    models: dict[str, Any], pca: Any, pca2: Any, m: dict[str, Any], x: torch.Tensor, xt: torch.Tensor, k: int
) -> dict[str, Any]:
    """The tour's "measure" step: the linear AE's subspace against PCA's, each 30-number model's test
    figures (the VAE's with a k-sample importance-sampled log p(x)), and the 2-D models' squared errors."""
    lin = m[LINEAR_AE]
    angles = principal_angles_deg(pca.components_, lin.subspace())
    res: dict[str, Any] = {
        "linear_ae_principal_angles_deg": {
            "max": float(angles.max()),
            "mean": float(angles.mean()),
            "median": float(angles.median()),
        },
        "linear_ae_variance_captured": variance_captured(x, pca.mean_, lin.subspace(), pca.components_),
    }
    res["test"] = {name: evaluate(model, xt, k=k if name == VAE else 0) for name, model in models.items()}
    res["squared_error_30"] = {name: r["squared_error"]["value"] for name, r in res["test"].items()}
    res["squared_error_2"] = {
        name: float(((model.reconstruct(xt) - xt) ** 2).flatten(1).sum(1).mean())
        for name, model in ((PCA_NAME, pca2), (DEEP_AE, m[DEEP_AE_2D]), (VAE, m[VAE_2D]))
    }
    return res


def generation(
    net: Any, net_name: str, digest: str, images: dict[str, torch.Tensor], data: Data, s: dict
) -> dict[str, Any]:
    """The tour's "generation" step: every image set scored against a random half of the test images
    in the feature network's space (the floor: the other half), the network's own accuracy, the digit
    scores, and how often the conditional VAE's samples read as the asked-for digit."""
    from vaekit.metrics.generation import image_features

    xt, yt = data.x_test, data.y_test
    f_test = image_features(net, xt)  # (N_test, D): the accuracy, the reference and the floor all come from these
    reference, others = test_halves(len(xt), s["n"])
    feats = {
        FLOOR.label: f_test[others],
        **set_features(net, {k: v for k, v in images.items() if k != FLOOR.label}),
    }
    table = generation_table(feats, f_test[reference], net, f"{net_name} sha256:{digest[:12]}", s["kid_subsets"])
    asked = _asked(s["n"], data.device)
    return {
        "feature_network": {"name": net_name, "sha256": digest, "test_accuracy": _accuracy(net, f_test, yt)},
        "generation": table.to_json(),
        "digit_scores": {
            REAL_DIGITS: table.row(FLOOR).digit_score,
            **{d.digit_score_name: table.row(d).digit_score for d in DIGIT_SCORE_SETS},
        },
        "conditional": {
            "classifier_accuracy_on_samples": _accuracy(net, feats[CVAE.label], asked),
            "samples": len(asked),
            "digit_score": table.row(CVAE).digit_score,
        },
    }


@torch.no_grad()
def _accuracy(net: Any, features: torch.Tensor, y: torch.Tensor) -> float:
    """How often the network's head, on features (N, D), reads the label y (N,)."""
    logits = net.head(features.float().to(next(net.parameters()).device))
    return float((logits.argmax(1) == y.to(logits.device)).float().mean())


def test_halves(n_test: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random sets of n test indices: the reference every set is compared with, and
    the floor. Random, not the first and second n: MNIST's first 5,000 test digits (from NIST's
    SD-3, written by Census staff) are cleaner than the last 5,000 (SD-1, written by students), and
    the halves differ by a Fréchet distance of 36.6 in the feature network's space."""
    if n_test < 2 * n:
        raise VaekitError(f"the tour's generation scores need {2 * n} test images (n = {n} on each side); got {n_test}")
    perm = torch.randperm(n_test, generator=torch.Generator().manual_seed(seed))
    return perm[:n], perm[n : 2 * n]


def _asked(n: int, device: torch.device) -> torch.Tensor:
    """The labels the conditional VAE is asked for: each digit in turn, (n,)."""
    return torch.arange(n, device=device) % 10


@torch.no_grad()
def generation_sets(m: dict[str, Any], data: Data, s: dict, floor: torch.Tensor) -> dict[str, torch.Tensor]:
    """n images (n, 1, 28, 28) of each kind the tour scores: the floor (the test images at `floor`,
    n indices), decoders on random codes from N(0, I) and from samplers fitted to the training
    codes (a full-covariance Gaussian; a 10-component mixture, scikit-learn's GaussianMixture),
    midpoints between two test digits of different classes, and the conditional VAE's samples."""
    from vaekit.models.samplers import codes_of, draw_images, fit_codes

    n, dev = s["n"], data.device
    ae, vae = m[DEEP_AE], m[VAE]
    xt = data.x_test
    z_ae, z_vae = codes_of(ae, data.x_train), codes_of(vae, data.x_train)  # (N, 30) each, computed once

    def g(seed: int) -> torch.Generator:
        return torch.Generator(device=dev).manual_seed(seed)

    pairs = moon_pairs(data.y_test, n)
    return {
        FLOOR.label: xt[floor.to(dev)],
        AE_PRIOR.label: ae.decode(torch.randn(n, CODE, generator=g(1), device=dev)).mean,
        AE_GAUSSIAN.label: draw_images(ae, fit_codes(z_ae, "gaussian", device=dev), n, g(2)),
        AE_GMM.label: draw_images(ae, fit_codes(z_ae, "gmm:10", device=dev), n, g(3)),
        VAE_PRIOR.label: vae.sample(n, generator=g(4)),
        VAE_GMM.label: draw_images(vae, fit_codes(z_vae, "gmm:10", device=dev), n, g(5)),
        AE_MIDPOINTS.label: midpoints(ae, xt, pairs),
        VAE_MIDPOINTS.label: midpoints(vae, xt, pairs),
        CVAE.label: m[CONDITIONAL_VAE].sample(n, generator=g(6), y=_asked(n, dev)),
    }


@torch.no_grad()
def set_features(net: Any, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{name: (n, D) features} of each set of images, clipped to [0, 1] first, the range of the
    data (a Gaussian decoder's means can stray slightly outside it)."""
    from vaekit.metrics.generation import image_features

    return {name: image_features(net, imgs.clamp(0, 1)) for name, imgs in images.items()}


@torch.no_grad()
def generation_table(
    feats: dict[str, torch.Tensor], real: torch.Tensor, net: Any, network: str, kid_subsets: int = 100
) -> GenerationTable:
    """Each set's generation metrics, its features (n, D) in `feats` against `real` (n, D), the
    reference test images' features; and its digit score: the mean top-class probability of the
    network's classifier head on those features."""
    from vaekit.metrics.generation import generation_metrics

    sets = {}
    for name, f in feats.items():
        metrics = generation_metrics(real, f, network=network, kid_subsets=kid_subsets)
        top = net.head(f.float().to(next(net.parameters()).device)).softmax(1).amax(1)
        sets[name] = GenerationRow(**{k: v["value"] for k, v in metrics.items()}, digit_score=float(top.mean()))
    return GenerationTable(
        network=network,
        n=len(real),
        reference=f"{len(real)} test images drawn at random (the floor: {len(real)} others)",
        units={k: v["unit"] for k, v in metrics.items()},
        kid_subsets=kid_subsets,
        kid_subset_size=min(1000, len(real)),
        features=real.shape[1],
        sets=sets,
    )


@torch.no_grad()
def pictures(
    m: dict[str, Any],
    models: dict[str, Any],
    pca2: Any,
    data: Data,
    images: dict[str, torch.Tensor],
    trained: dict[str, Any],
    s: dict,
    out: Path,
) -> None:
    xt, yt = data.x_test, data.y_test
    viz.reconstruction_grid(
        xt[:12], {n: model.reconstruct(xt[:12]).clamp(0, 1) for n, model in models.items()}, out / "reconstructions.png"
    )
    viz.training_curves(
        {n: trained[n].history for n in (LINEAR_AE, DEEP_AE, VAE)}, out / "curves.png", keys=("train_loss",)
    )
    rows = interpolation_rows({"AE": m[DEEP_AE], "VAE": m[VAE]}, xt, moon_pairs(yt, s["pairs_shown"]))
    viz.labelled_rows({k: v.clamp(0, 1) for k, v in rows.items()}, out / "moon.png")
    shown = [d.label for d in IMAGE_SETS if d.sampled]
    viz.labelled_rows({n: images[n][:16].clamp(0, 1) for n in shown}, out / "random_codes.png")
    dev = data.device
    rows = torch.arange(10, device=dev).repeat_interleave(10)
    viz.image_grid(
        m[CONDITIONAL_VAE].sample(100, generator=torch.Generator(device=dev).manual_seed(1), y=rows),
        out / "conditional.png",
        nrow=10,
    )
    viz.latent_maps(
        {
            "PCA (2-D)": (pca2.transform(xt), yt),
            "AE (2-D)": (m[DEEP_AE_2D].embed(xt), yt),
            "VAE (2-D)": (m[VAE_2D].embed(xt), yt),
        },
        out / "latent_maps.png",
    )
    viz.manifold_grid(lambda z: m[VAE_2D].decode(z).mean, out / "vae_manifold.png", n=15, device=dev)
    moon_explorer(m[DEEP_AE_2D], m[VAE_2D], xt, yt, out / "explorer.html")


EXPLORER_INTRO = (
    "The moon experiment, made interactive: both models have two-number codes, and one cursor decodes "
    "in both. Move it over either map; the other follows to the same place relative to its codes. "
    "Nothing trained the AE's decoder between its clusters, so what it draws there is left to chance "
    "(often smudges or blends of two digits); the VAE's gaps decode to digits."
)


def moon_explorer(ae: Any, vae: Any, x: torch.Tensor, y: torch.Tensor, path: Path, points: int = 5000) -> Path:
    """The tour's explorer page: the 2-D AE beside the 2-D VAE, linked, over test images x (N, 1, 28, 28)."""
    from vaekit.explorer.page import Blob, panel_spec, write_page

    blob = Blob()
    panels = [
        panel_spec(
            ae,
            x,
            blob,
            y,
            title="deep autoencoder, 2-D code",
            points=points,
            note="No prior: nothing trained the space between its codes, and it cannot sample.",
        ),
        panel_spec(
            vae,
            x,
            blob,
            y,
            title="VAE, 2-D code",
            points=points,
            note="Its codes are noisy and held near N(0, I): the gaps are filled, and it samples.",
        ),
    ]
    return write_page(path, panels, blob, "vaekit tour: the AE and the VAE, one cursor", EXPLORER_INTRO, linked=True)
