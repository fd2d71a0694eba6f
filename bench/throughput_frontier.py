"""Training throughput of the frontier models: vaekit's loop against a plain PyTorch loop of the same
network and loss.

Each model is built from its benchmark config (configs/mnist_hvae.toml, mnist_iaf.toml,
mnist_vqvae.toml). The plain loop drives the same network, built with the same seed, over the same
images: shuffled batches, the forward pass, -log p(x|z) plus the KL term (plus the VQ-VAE's
commitment) written out by hand, backward, Adam. vaekit's `fit` adds its sampler, schedules,
EMA, gradient checks and logging. Both run on Bernoulli-likelihood [0, 1] MNIST held in memory
(the first --images training images), alternating, and the medians of the epoch times are
compared, as is the median of each repeat's own ratio (its two epochs ran back to back, so machine
noise that lasts longer than an epoch cancels). Target: vaekit <= 1.10x the plain loop.

    python bench/throughput_frontier.py [--models hvae,iaf,vqvae] [--repeats 3] [--threads 2] [--images 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"hvae": "mnist_hvae.toml", "iaf": "mnist_iaf.toml", "vqvae": "mnist_vqvae.toml"}


def _config(name: str):
    from vaekit.config import load_config

    # one plain epoch: no EMA, no warm-up or schedule, so both loops take the same steps
    return load_config(
        ROOT / "configs" / CONFIGS[name],
        [
            "train.ema=null",
            "train.kl_warmup_epochs=0",
            "train.schedule=constant",
            "train.progress=false",
            "train.epochs=1",
        ],
    )


def _model(cfg, shape, seed: int):
    from vaekit.models import build_model

    torch.manual_seed(seed)
    return build_model(cfg.model, shape)


def plain_epoch(cfg, x: torch.Tensor, seed: int) -> float:
    model = _model(cfg, x.shape[1:], seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    t = time.perf_counter()
    model.train()
    for idx in torch.randperm(len(x)).split(cfg.train.batch_size):
        xb = x[idx]
        out = model(xb)
        nll = -out.px.log_prob(xb)  # (B,)
        if out.kl_parts is not None:  # the hierarchy: each layer's closed-form KL
            kl = sum(out.kl_parts.values())
        else:  # a flow or a VQ-VAE: log q - log p at the code (N(0, I) prior where the model gives none)
            log_pz = (
                out.log_pz if out.log_pz is not None else torch.distributions.Normal(0.0, 1.0).log_prob(out.z).sum(-1)
            )
            kl = out.log_qz - log_pz
        loss = nll + kl + sum((out.penalties or {}).values())
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    return time.perf_counter() - t


def vaekit_epoch(cfg, data, seed: int) -> float:
    from vaekit.training.loop import fit

    model = _model(cfg, data.shape, seed)
    t = time.perf_counter()
    fit(model, data, dataclasses.replace(cfg.train, seed=seed))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="hvae,iaf,vqvae")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from vaekit.config import DataConfig
    from vaekit.data.prepared import prepare

    data = prepare(DataConfig(name="mnist", val_size=0))
    data = dataclasses.replace(data, x_train=data.x_train[: args.images], y_train=None, x_val=data.x_val[:0])
    x = data.x_train
    print(f"torch {torch.__version__}, {args.threads} threads, {len(x)} images of [0, 1] MNIST, Bernoulli")
    for name in args.models.split(","):
        cfg = _config(name)
        plain_epoch(cfg, x[:1000], 0), vaekit_epoch(cfg, dataclasses.replace(data, x_train=x[:1000]), 0)  # warm-up
        plain, ours = [], []
        for r in range(args.repeats):
            plain.append(plain_epoch(cfg, x, r))
            ours.append(vaekit_epoch(cfg, data, r))
            print(f"  {name} repeat {r + 1}: plain {plain[-1]:.2f} s, vaekit {ours[-1]:.2f} s")
        p, v = statistics.median(plain), statistics.median(ours)
        paired = statistics.median(o / q for o, q in zip(ours, plain))  # each repeat's two epochs ran back to back
        print(
            f"{name} ({CONFIGS[name]}): plain {p:.2f} s/epoch ({len(x) / p:,.0f} images/s), "
            f"vaekit {v:.2f} s/epoch ({len(x) / v:,.0f} images/s), ratio {v / p:.3f} (target <= 1.10); "
            f"median of the paired ratios {paired:.3f}"
        )


if __name__ == "__main__":
    main()
