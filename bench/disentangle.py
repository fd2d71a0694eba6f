"""Disentanglement on `shapes`: the plain VAE, beta-VAEs, beta-TC-VAE and FactorVAE with the same
encoder/decoder and the same time budget, several seeds; MIG, DCI, the FactorVAE score and SAP.

The papers train ~300,000 steps on a GPU; on 2 CPU cores each (model, seed) trains for --minutes of
wall time on a reduced grid at a reduced resolution (3 shapes x 6 scales x 10 orientations x 8 x 8
positions = 11,520 images of 32 x 32, of which 10% are held out for testing and 500 for validation,
so that an epoch is short enough for the time budget to stop near it; a conv encoder 32-32-64 and
its mirror, 10 latent dimensions, Bernoulli likelihood, batch 64, Adam 5e-4). The metrics use disentanglement_lib's
protocol with every sample count times --fraction (on the model's whole grid). Each finished job is
saved as OUT/<model>_s<seed>.json and skipped when run again, so two copies can run side by side
with one thread each on different --models or --seeds, then:

    python bench/disentangle.py [--models vae,beta4,beta8,btcvae,factorvae] [--seeds 0,1,2] [--minutes 4]
                                [--threads 2] [--fraction 0.2] [--out runs/disentangle]
    python bench/disentangle.py --table --out runs/disentangle      # the table of every saved job

A traversal picture of each run is written as OUT/<model>_s<seed>/traversal.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

BASE = {
    "data": {"name": "shapes", "shapes_grid": [3, 6, 10, 8, 8], "image_size": [32, 32], "val_size": 500},
    "model": {"name": "vae", "arch": "conv", "channels": [32, 32, 64], "latent_dim": 10, "likelihood": "bernoulli"},
    "train": {"batch_size": 64, "lr": 5e-4, "epochs": 1000, "eval_k": 0, "progress": False},
}
MODELS = {  # name -> (what it is, config changes)
    "vae": ("VAE (beta = 1)", {}),
    "beta4": ("beta-VAE, beta = 4", {"train": {"beta": 4.0}}),
    "beta8": ("beta-VAE, beta = 8", {"train": {"beta": 8.0}}),
    "btcvae": ("beta-TC-VAE, tc_beta = 6", {"train": {"objective": "btcvae", "tc_beta": 6.0}}),
    "factorvae": (
        "FactorVAE, gamma = 35 (D: 4 x 256)",
        {"model": {"name": "factorvae", "tc_gamma": 35.0, "discriminator_hidden": [256] * 4}},
    ),
}
METRICS = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_test", "factor_vae_eval", "sap")


def config(model: str, seed: int, minutes: float) -> dict:
    cfg = json.loads(json.dumps(BASE))
    for section, values in MODELS[model][1].items():
        cfg[section].update(values)
    cfg["train"].update(seed=seed, max_minutes=minutes)
    return cfg


def run_job(model: str, seed: int, args) -> dict:
    import vaekit
    from vaekit.cli import main as cli
    from vaekit.metrics.disentanglement import Samples, evaluate_disentanglement

    run = Path(args.out) / f"{model}_s{seed}"
    t = time.perf_counter()
    res = vaekit.train(config(model, seed, args.minutes), run_dir=run, pictures=False)
    train_s = time.perf_counter() - t
    full = Samples()
    counts = {
        f.name: max(10, round(getattr(full, f.name) * args.fraction))
        for f in dataclasses.fields(Samples)
        if isinstance(getattr(full, f.name), int) and f.name not in ("bins", "factor_vae_batch")
    }
    from vaekit.config import DataConfig
    from vaekit.data.prepared import prepare

    truth = prepare(DataConfig(**{**BASE["data"], "val_size": 0, "test_size": 1})).ground_truth
    t = time.perf_counter()
    scores = evaluate_disentanglement(res["model"], truth, seed=seed, s=dataclasses.replace(full, **counts))
    cli(["traverse", str(run), "--out", str(run / "traversal.png")])
    hist = res["history"]
    return {
        "model": model,
        "seed": seed,
        "epochs": len(hist),
        "steps": hist[-1]["step"],
        "train_minutes": train_s / 60,
        "metric_minutes": (time.perf_counter() - t) / 60,
        "threads": torch.get_num_threads(),
        "fraction": args.fraction,
        "val_loss": hist[-1].get("val_loss"),
        "val_kl": hist[-1].get("val_kl"),
        "val_nll": hist[-1].get("val_nll"),
        **{k: v for k, v in scores.items() if not isinstance(v, list)},
        "mig_per_factor": scores["mig_per_factor"],
    }


def table(out: Path) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*_s*.json"))]
    print(
        f"{'model':34s} {'seeds':>5s} "
        + " ".join(f"{m[:14]:>15s}" for m in METRICS)
        + f" {'recon nll':>10s} {'min':>5s}"
    )
    for name, (title, _) in MODELS.items():
        mine = [r for r in rows if r["model"] == name]
        if not mine:
            continue

        def cell(k, mine=mine):
            return (
                f"{statistics.mean(r[k] for r in mine):.3f}±{statistics.stdev(r[k] for r in mine):.3f}"
                if len(mine) > 1
                else f"{mine[0][k]:.3f}"
            )

        print(
            f"{title:34s} {len(mine):5d} "
            + " ".join(f"{cell(m):>15s}" for m in METRICS)
            + f" {statistics.mean(r['val_nll'] for r in mine):10.2f} "
            f"{statistics.mean(r['train_minutes'] for r in mine):5.1f}"
        )
    print(
        "mean ± sd over seeds. Locatello et al. (2019) found, over 12,000 models, that the spread over random seeds "
        "often exceeds the differences between models: compare each sd with the gaps between rows."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--minutes", type=float, default=4.0, help="training wall time per model and seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.2, help="of disentanglement_lib's sample counts")
    ap.add_argument("--out", default="runs/disentangle")
    ap.add_argument("--table", action="store_true", help="print the table of the jobs saved in --out and stop")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.table:
        torch.set_num_threads(args.threads)
        out.mkdir(parents=True, exist_ok=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            for model in args.models.split(","):
                target = out / f"{model}_s{seed}.json"
                if target.exists():
                    continue
                result = run_job(model, seed, args)
                target.write_text(json.dumps(result, indent=2) + "\n")
                print(
                    f"{model} seed {seed}: "
                    + ", ".join(f"{k} {result[k]:.3f}" for k in METRICS)
                    + f" ({result['epochs']} epochs, {result['train_minutes']:.1f} min)",
                    flush=True,
                )
    table(out)


if __name__ == "__main__":
    main()
