"""Sample quality on MNIST: the tour's models with every sampler, and vaekit's best likelihood recipe.

Rows: the floor (5,000 other real test images), the tour's deep AE and VAE at code size 30 (the
same configs and training as `vaekit tour`, trained side by side with one thread each), each
decoding codes from N(0, I), a full-covariance Gaussian, a 10-component mixture and a two-stage VAE
fitted to its training codes, and the VampPrior recipe of configs/mnist_best.toml (trained on
dynamically binarised MNIST; its samples are the decoder's Bernoulli means, compared with the grey
test images) from its own prior and with a mixture fitted to its codes.

Every set of n images is compared with n test images drawn at random in the shipped MNIST feature
network's space (the floor: n other test images): Fréchet distance, KID, precision, recall,
density, coverage, and the digit score (mean top-class probability). Seeds are fixed.

    python bench/generation.py [--n 5000] [--best-minutes 60] [--best-run DIR] [--out FILE]

The recipe trains for at most --best-minutes (its cosine schedule sized to that budget, as
bench/nll_mnist.py row c does for 60 minutes), or --best-run reuses a run already trained by
`python bench/nll_mnist.py c --threads 1 --k 0 --out DIR`.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

import vaekit
from vaekit.config import DataConfig
from vaekit.data.prepared import prepare
from vaekit.metrics.features import load_features
from vaekit.metrics.generation import image_features
from vaekit.models.samplers import draw_images, fit_sampler
from vaekit.runs import load_run
from vaekit.training.lanes import train_side_by_side
from vaekit.tutorial.experiment import SETTINGS, _jobs, generation_table, set_features, test_halves
from vaekit.tutorial.tables import FLOOR

ROOT = Path(__file__).resolve().parent.parent
EPOCHS_PER_MINUTE = 195 / 60  # configs/mnist_best.toml on one thread of the 2-core reference machine


def best_recipe(minutes: float, run: str | None) -> tuple[object, float, str]:
    """The mnist_best model: from `run`, or trained here for at most `minutes` (one thread)."""
    if run:
        model, _ = load_run(run)
        return model, float("nan"), f"reused {run}"
    epochs = max(1, round(EPOCHS_PER_MINUTE * minutes))
    out = Path(tempfile.mkdtemp(prefix="vaekit-bench-best-")) / "run"
    t = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as bench/nll_mnist.py measured the recipe: one thread of the 2-core machine
    try:
        res = vaekit.train(
            ROOT / "configs" / "mnist_best.toml",
            run_dir=out,
            pictures=False,
            overrides=[f"train.epochs={epochs}", f"train.max_minutes={minutes}", "train.progress=false"],
        )
    finally:
        torch.set_num_threads(threads)
    model, _ = load_run(out)
    done = res["history"][-1]["epoch"] if res["history"] else 0
    return (
        model,
        time.perf_counter() - t,
        (f"{epochs}-epoch cosine schedule, at most {minutes:g} minutes on one thread: {done} epochs trained"),
    )


def image_sets(models: dict[str, object], x: torch.Tensor, floor: torch.Tensor, n: int) -> tuple[dict, dict]:
    """{name: (n, 1, 28, 28) images} (`floor`: the floor's real images) and {name: seconds to fit its sampler}."""
    g = torch.Generator().manual_seed(0)
    sets, fit_seconds = {FLOOR.label: floor}, {}
    for name, model in models.items():
        samplers = ["gaussian", "gmm:10", "two-stage"] if name != "VampPrior recipe" else ["gmm:10"]
        with torch.no_grad():
            if name == "deep AE":
                sets[f"{name} on N(0, I)"] = model.decode(torch.randn(n, model.latent_dim, generator=g)).mean
            else:
                sets[f"{name}, own prior"] = model.sample(n, generator=g)
        for spec in samplers:
            t = time.perf_counter()
            sampler = fit_sampler(model, x, spec)
            fit_seconds[f"{name} + {spec}"] = time.perf_counter() - t
            with torch.no_grad():
                sets[f"{name} + {spec}"] = torch.cat(
                    [draw_images(model, sampler, len(c), g) for c in torch.arange(n).split(1000)]
                )
    return sets, fit_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="images per set (at most 5000: the floor needs 2n test images)")
    ap.add_argument("--best-minutes", type=float, default=60.0)
    ap.add_argument("--best-run", help="a trained configs/mnist_best.toml run to reuse")
    ap.add_argument("--out", default="bench/results/generation.json")
    args = ap.parse_args()
    data = prepare(DataConfig(name="mnist", val_size=0))
    x, xt = data.x_train, data.x_test
    t = time.perf_counter()
    trained = train_side_by_side(_jobs(SETTINGS["full"])[:2], data, lanes=2)
    models = {name: done.model for name, done in trained.items()}
    print(
        f"tour models trained side by side in {time.perf_counter() - t:.0f} s "
        f"({', '.join(f'{k} {v.seconds:.0f} s' for k, v in trained.items())})",
        flush=True,
    )
    best, best_seconds, how = best_recipe(args.best_minutes, args.best_run)
    models["VampPrior recipe"] = best
    print(f"VampPrior recipe: {how} ({best_seconds:.0f} s)", flush=True)
    reference, others = test_halves(len(xt), args.n)
    sets, fit_seconds = image_sets(models, x, xt[others], args.n)
    net, name, digest = load_features()
    t = time.perf_counter()
    table = generation_table(
        set_features(net, sets), image_features(net, xt[reference]), net, f"{name} sha256:{digest[:12]}"
    )
    score_seconds = time.perf_counter() - t
    print(f"\nfeature network {table.network}; {args.n} images per set against {table.reference}")
    print(
        f"{'images':34s} {'FD':>8s} {'KID':>16s} {'prec':>6s} {'recall':>6s} {'dens':>6s} {'cover':>6s} {'digit':>6s}"
    )
    for set_name, v in table.to_json()["sets"].items():
        print(
            f"{set_name:34s} {v['frechet_distance']:8.2f} {v['kid']:8.3g} ± {v['kid_std']:5.2g} "
            f"{v['precision']:6.3f} {v['recall']:6.3f} {v['density']:6.3f} {v['coverage']:6.3f} {v['digit_score']:6.3f}"
        )
    print(
        f"\nsampler fits: {', '.join(f'{k} {v:.1f} s' for k, v in fit_seconds.items())}; scoring all sets "
        f"{score_seconds:.0f} s"
    )
    record = {
        "table": table.to_json(),
        "training_seconds": {k: v.seconds for k, v in trained.items()},
        "best": how,
        "best_seconds": best_seconds,
        "fit_seconds": fit_seconds,
        "score_seconds": score_seconds,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
