"""Prove that a refactor changed nothing: train a set of small configs through the CLI and hash what
each run leaves behind (weights, metrics, evaluation, pictures, sampled and reconstructed outputs).

Run it at the commit before a change and at the commit after, with the same thread count, and
compare the two JSON files: every hash must match.

    OMP_NUM_THREADS=1 PYTHONPATH=OLD/src python bench/behaviour_hashes.py --out before.json
    OMP_NUM_THREADS=1 PYTHONPATH=NEW/src python bench/behaviour_hashes.py --out after.json
    python bench/behaviour_hashes.py --compare before.json after.json

With --tour, `vaekit tour --quick` is hashed too ("tour_quick"): its PNGs byte for byte, results.json
without its timings and the pages with their "N s" times masked.

Needs MNIST (`vaekit data fetch mnist`). Only the CLI is used, so any two versions of vaekit can
be compared. Timing fields ("seconds") are dropped before hashing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SMALL = ["data.limit=2500", "data.val_size=500", "train.epochs=2", "train.eval_k=20", "train.progress=false"]
VAE = ["model.name=vae", "model.hidden=[64]", "model.latent_dim=4"]

# name -> (launcher processes, --set overrides). Each one is a small, seeded run.
CONFIGS: dict[str, tuple[int, list[str]]] = {
    "pca": (
        1,
        ["model.name=pca", "model.latent_dim=8", "data.limit=2500", "data.val_size=500", "train.progress=false"],
    ),
    "linear_ae_tied": (1, SMALL + ["model.name=linear_ae", "model.tied=true", "model.latent_dim=8"]),
    "linear_ae_untied": (1, SMALL + ["model.name=linear_ae", "model.latent_dim=8"]),
    "ae_bernoulli": (1, SMALL + ["model.name=ae", "model.hidden=[64]", "model.latent_dim=8"]),
    "vae_cb_plain": (1, SMALL + VAE),
    "vae_bernoulli_binarised": (1, SMALL + VAE + ["data.binarize=dynamic", "model.likelihood=bernoulli"]),
    "vae_gaussian": (1, SMALL + VAE + ["data.dequantize=uniform", "model.likelihood=gaussian", "model.sigma=0.3"]),
    "vae_gaussian_shared": (1, SMALL + VAE + ["data.dequantize=uniform", "model.likelihood=gaussian_shared"]),
    "vae_gaussian_pixel": (1, SMALL + VAE + ["data.dequantize=uniform", "model.likelihood=gaussian_pixel"]),
    "vae_logistic": (1, SMALL + VAE + ["model.likelihood=discretized_logistic"]),
    "vae_logistic_mixture": (
        1,
        SMALL + VAE + ["model.likelihood=discretized_logistic_mixture", "model.mixture_components=3"],
    ),
    "vae_vamp": (
        1,
        SMALL
        + VAE
        + [
            "data.binarize=fixed",
            "model.likelihood=bernoulli",
            "model.prior=vamp",
            "model.prior_components=20",
            "train.ema=0.99",
        ],
    ),
    "vae_mog": (
        1,
        SMALL
        + VAE
        + ["data.binarize=fixed", "model.likelihood=bernoulli", "model.prior=mog", "train.kl_warmup_epochs=1"],
    ),
    "vae_iwae": (
        1,
        SMALL
        + VAE
        + ["data.binarize=dynamic", "model.likelihood=bernoulli", "train.objective=iwae", "train.samples=5"],
    ),
    "vae_free_bits_cosine": (
        1,
        SMALL
        + VAE
        + [
            "data.binarize=dynamic",
            "model.likelihood=bernoulli",
            "train.free_bits=0.1",
            "train.schedule=cosine",
            "train.warmup_epochs=0.5",
            "train.grad_clip=5.0",
        ],
    ),
    "cvae": (1, SMALL + VAE + ["data.binarize=dynamic", "model.likelihood=bernoulli", "model.conditional=true"]),
    "vae_conv": (1, SMALL + ["model.name=vae", "model.arch=conv", "model.channels=[8, 16]", "model.latent_dim=4"]),
    "vae_resnet": (
        1,
        SMALL
        + [
            "data.limit=800",
            "model.name=vae",
            "model.arch=resnet",
            "model.channels=[8, 8]",
            "model.depth=1",
            "model.latent_dim=4",
        ],
    ),
    "vae_gated_mlp": (
        1,
        SMALL + VAE + ["model.block=gated", "model.dropout=0.1", "train.optimizer=adamw", "train.weight_decay=0.01"],
    ),
    "vae_bf16": (1, SMALL + VAE + ["train.precision=bf16"]),
    "vae_streamed_folder": (
        1,
        [
            "data.name={folder}",
            "data.stream=true",
            "data.workers=1",
            "data.val_size=50",
            "train.epochs=2",
            "train.eval_k=10",
            "train.progress=false",
            "model.name=vae",
            "model.hidden=[32]",
            "model.latent_dim=3",
            "train.checkpoint_every=7",
        ],
    ),
    # A grid of known factors: its ordered split (data.limit a random subset), images drawn per batch,
    # and the disentanglement protocol (counts scaled by --fraction).
    "vae_shapes": (
        1,
        [
            "data.name=shapes",
            "data.shapes_grid=[3, 4, 6, 6, 6]",
            "data.image_size=[32, 32]",
            "data.limit=1500",
            "data.val_size=200",
            "train.epochs=1",
            "train.eval_k=10",
            "train.progress=false",
            "model.name=vae",
            "model.hidden=[64]",
            "model.latent_dim=4",
            "model.likelihood=bernoulli",
        ],
    ),
    "vae_torchrun_2": (2, SMALL + VAE + ["data.binarize=dynamic", "model.likelihood=bernoulli"]),
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def tensor_digest(path: Path) -> str:
    """The weights' names, dtypes, shapes and bytes (independent of the file's header layout)."""
    from safetensors.numpy import load_file

    h = hashlib.sha256()
    for k, v in sorted(load_file(str(path)).items()):
        h.update(f"{k}{v.dtype}{v.shape}".encode())
        h.update(v.tobytes())
    return h.hexdigest()[:16]


def json_digest(obj) -> str:
    def drop(o):
        if isinstance(o, dict):
            return {k: drop(v) for k, v in o.items() if k != "seconds"}
        if isinstance(o, list):
            return [drop(v) for v in o]
        return o

    return hashlib.sha256(json.dumps(drop(obj), sort_keys=True).encode()).hexdigest()[:16]


def make_folder(root: Path) -> Path:
    """240 MNIST test digits as PNGs in class folders (deterministic)."""
    import numpy as np
    from PIL import Image

    from vaekit.config import DataConfig
    from vaekit.data import prepare

    data = prepare(DataConfig(name="mnist", val_size=0))
    folder = root / "folder"
    for i in range(240):
        x = (data.x_test[i, 0].numpy() * 255).round().astype(np.uint8)
        d = folder / str(int(data.y_test[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(d / f"{i:04d}.png")
    return folder


def vaekit(args: list[str], nproc: int, cwd: Path, check: bool = True) -> str:
    if nproc == 1:
        cmd = [sys.executable, "-m", "vaekit", *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "vaekit",
            *args,
        ]
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0 and not check:
        return f"failed ({p.returncode}): " + (p.stderr.strip().splitlines() or [""])[-1].replace(str(cwd), "ROOT")
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.stdout


def hash_run(run: Path, root: Path) -> dict[str, str]:
    out = {
        "weights": tensor_digest(run / "model" / "model.safetensors"),
        "model_config": json_digest(json.loads((run / "model" / "config.json").read_text()) | {"vaekit_version": None}),
        "eval": json_digest(json.loads((run / "eval.json").read_text())),
    }
    metrics = run / "metrics.jsonl"
    if metrics.exists():
        out["metrics"] = json_digest([json.loads(line) for line in metrics.read_text().splitlines()])
    for png in sorted(run.glob("*.png")):
        out[png.name] = digest(png)
    out["evaluate_cli"] = json_digest(json.loads(vaekit(["evaluate", str(run), "--k", "10", "--json"], 1, root)))
    for verb, extra in (("reconstruct", ["--n", "8"]), ("interpolate", ["--steps", "5"]), ("sample", ["--n", "16"])):
        png = root / f"{verb}.png"
        png.unlink(missing_ok=True)
        said = vaekit([verb, str(run), "--out", str(png), *extra], 1, root, check=False)
        out[f"{verb}_cli"] = digest(png) if png.exists() else said  # a refusal is behaviour too
    for name, extra in EVALUATIONS.get(run.name, {}).items():
        said = vaekit(["evaluate", str(run), *extra, "--json"], 1, root, check=False)
        out[name] = json_digest(json.loads(said)) if not said.startswith("failed") else said
    return out


# Further evaluations of some runs: name -> (run name -> evaluate's arguments).
EVALUATIONS = {
    "vae_bernoulli_binarised": {"generation_cli": ["--generation", "--n", "400", "--sampler", "gmm:3"]},
    "cvae": {"generation_cli": ["--generation", "--n", "400"]},
    "vae_shapes": {"disentanglement_cli": ["--disentanglement", "--fraction", "0.02", "--seed", "3"]},
}


def _untimed(o):
    """`o` without the keys that hold times (seconds_by_step, pca_fit_seconds, ...)."""
    if isinstance(o, dict):
        return {k: _untimed(v) for k, v in o.items() if "second" not in k}
    if isinstance(o, list):
        return [_untimed(v) for v in o]
    return o


def hash_tour(root: Path) -> dict[str, str]:
    """`vaekit tour --quick`: every file it writes, timings left out."""
    import re

    out = root / "tour"
    vaekit(["tour", "--quick", "--quiet", "--device", "cpu", "--out", str(out)], 1, root)
    hashes = {}
    for f in sorted(out.iterdir()):
        if f.suffix == ".json":
            hashes[f.name] = json_digest(_untimed(json.loads(f.read_text())))
        elif f.suffix == ".html":
            hashes[f.name] = hashlib.sha256(re.sub(r"\d+(\.\d+)? s\b", "T s", f.read_text()).encode()).hexdigest()[:16]
        else:
            hashes[f.name] = digest(f)
    return hashes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="JSON file to write the hashes to")
    ap.add_argument("--only", nargs="*", help="config names to run (default: all)")
    ap.add_argument("--tour", action="store_true", help="also hash `vaekit tour --quick` (about 2 minutes)")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two hash files and exit")
    a = ap.parse_args()
    if a.compare:
        before, after = (json.loads(Path(p).read_text()) for p in a.compare)
        diff = [
            (n, k)
            for n in sorted(set(before) | set(after))
            for k in sorted(set(before.get(n, {})) | set(after.get(n, {})))
            if before.get(n, {}).get(k) != after.get(n, {}).get(k)
        ]
        for n, k in diff:
            print(f"DIFFERS {n}: {k} {before.get(n, {}).get(k)} -> {after.get(n, {}).get(k)}")
        print(f"{len(before)} configs, {sum(len(v) for v in before.values())} hashes; {len(diff)} differ")
        raise SystemExit(1 if diff else 0)
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="vaekit-hashes-") as tmp:
        root = Path(tmp)
        folder = make_folder(root)
        for name, (nproc, sets) in CONFIGS.items():
            if a.only and name not in a.only:
                continue
            run = root / name
            args = ["train", "--out", str(run), "--device", "cpu"]
            for s in sets:
                args += ["--set", s.format(folder=folder)]
            vaekit(args, nproc, root)
            results[name] = hash_run(run, root)
            print(name, json.dumps(results[name]), flush=True)
        if a.tour:
            results["tour_quick"] = hash_tour(root)
            print("tour_quick", json.dumps(results["tour_quick"]), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
