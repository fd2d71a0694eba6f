"""One scale in nats: probabilistic PCA and VAEs with continuous likelihoods on the same data.

All models see the same uniformly dequantised MNIST (x = (pixel + u) / 256, u ~ U(0, 1), so every
density is over [0, 1]^784 and bounded). Each log-likelihood keeps its constants, so the numbers are
comparable: the exact PPCA log-likelihood (Tipping & Bishop 1999) with q = 30, against importance-
sampled log p(x) of 30-D VAEs with a Gaussian likelihood (one learned sigma; a sigma per pixel) and
a continuous Bernoulli. Bits/dim count the 256 levels (an upper bound for the 8-bit data).

    python bench/nats_scale.py [--epochs 20] [--k 200] [--threads 2] [--limit N]
"""

from __future__ import annotations

import argparse
import time

import torch

import vaekit
from vaekit.config import from_dict
from vaekit.data.prepared import prepare
from vaekit.metrics.evaluation import evaluate

DATA = {"name": "mnist", "dequantize": "uniform", "val_size": 0}
ROWS = [
    ("probabilistic PCA, q = 30 (exact)", {"name": "pca", "latent_dim": 30}),
    (
        "VAE, Gaussian, one learned sigma",
        {"name": "vae", "latent_dim": 30, "hidden": [500], "likelihood": "gaussian_shared"},
    ),
    (
        "VAE, Gaussian, a sigma per pixel",
        {"name": "vae", "latent_dim": 30, "hidden": [500], "likelihood": "gaussian_pixel"},
    ),
    (
        "VAE, continuous Bernoulli",
        {"name": "vae", "latent_dim": 30, "hidden": [500], "likelihood": "continuous_bernoulli"},
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--k", type=int, default=200, help="importance samples per test image (VAEs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="use only the first N training images (quick checks)")
    args = ap.parse_args()
    data_cfg = {**DATA, "limit": args.limit} if args.limit else DATA
    torch.set_num_threads(args.threads)
    train = {"epochs": args.epochs, "batch_size": 128, "lr": 1e-3, "schedule": "cosine", "progress": False, "eval_k": 0}
    data = prepare(from_dict({"data": data_cfg}).data)
    print(
        f"dequantised MNIST: {len(data.x_train)} training, {len(data.x_test)} test images; "
        f"{args.epochs} epochs per VAE, K = {args.k}, {torch.get_num_threads()} threads"
    )
    print(f"{'model':<36} {'log p(x), nats':>16} {'bits/dim':>9} {'seconds':>8}")
    for title, model_cfg in ROWS:
        t0 = time.perf_counter()
        run = vaekit.train({"data": data_cfg, "model": model_cfg, "train": train}, data=data, pictures=False)
        res = evaluate(run["model"], data.x_test, k=args.k, dequantized=True)
        lp = res["ppca_log_likelihood"] if "ppca_log_likelihood" in res else res["log_px"]
        se = f" +- {res['log_px_stderr']['value']:.1f}" if "log_px_stderr" in res else ""
        print(
            f"{title:<36} {lp['value']:>9.1f}{se:<7} {res['bits_per_dim']['value']:>9.3f} "
            f"{time.perf_counter() - t0:>8.0f}"
        )


if __name__ == "__main__":
    main()
