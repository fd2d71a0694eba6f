"""Training throughput: vaekit's loop against a plain PyTorch loop of the same model.

Reference setting (PyTorch's examples/vae): MLP VAE 784-400-20, batch 128, Adam 1e-3, Bernoulli
(binary cross-entropy) on [0, 1] MNIST, one epoch over the 60,000 training images held in memory.
Both loops run over the same tensor, alternating, and the medians of the epoch times are compared.
Target: vaekit <= 1.10x the plain loop.

    python bench/throughput.py [--repeats 5] [--threads 2] [--device cpu|cuda] [--precision fp32|bf16|fp16]

On CUDA both loops run the same autocast setting (bf16/fp16 for the nets, the loss in fp32; fp16
with a GradScaler) and are timed with synchronisation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class PlainVAE(nn.Module):
    """The model of PyTorch's examples/vae/main.py."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


AMP = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epoch(x: torch.Tensor, seed: int, precision: str = "fp32") -> float:
    torch.manual_seed(seed)
    model = PlainVAE().to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    amp = AMP[precision]
    scaler = torch.amp.GradScaler(x.device.type) if precision == "fp16" else None
    _sync(x.device)
    t = time.perf_counter()
    model.train()
    for idx in torch.randperm(len(x), device=x.device).split(128):
        xb = x[idx]
        with torch.autocast(x.device.type, dtype=amp, enabled=amp is not None):
            recon, mu, logvar = model(xb)
        recon, mu, logvar = recon.float(), mu.float(), logvar.float()
        bce = F.binary_cross_entropy(recon, xb.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        opt.zero_grad()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    _sync(x.device)
    return time.perf_counter() - t


def vaekit_epoch(data, seed: int, precision: str = "fp32") -> float:
    from vaekit.config import ModelConfig, TrainConfig
    from vaekit.models import build_model
    from vaekit.training.loop import fit

    # The example's loss: Bernoulli cross-entropy on grey values (vaekit's VAE default is the continuous Bernoulli).
    model = build_model(ModelConfig(name="vae", latent_dim=20, hidden=[400], likelihood="bernoulli"), data.shape)
    cfg = TrainConfig(epochs=1, batch_size=128, lr=1e-3, seed=seed, progress=False, precision=precision)
    _sync(data.device)
    t = time.perf_counter()
    fit(model, data, cfg)
    _sync(data.device)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=sorted(AMP))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vaekit.config import DataConfig
    from vaekit.data.prepared import prepare
    from vaekit.training.devices import resolve_device

    device = resolve_device(args.device)
    data = prepare(DataConfig(name="mnist", val_size=0), device=device)
    data.x_val = data.x_val[:0]  # one epoch of training only, no validation pass
    x = data.x_train
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    print(f"torch {torch.__version__}, {where}, {args.precision}, {len(x)} images, batch 128, MLP 784-400-20 VAE")
    plain, ours = [], []
    plain_epoch(x[:5000], 0, args.precision), vaekit_epoch(_subset(data, 5000), 0, args.precision)  # warm-up
    for r in range(args.repeats):
        plain.append(plain_epoch(x, r, args.precision))
        ours.append(vaekit_epoch(data, r, args.precision))
        print(f"  repeat {r + 1}: plain {plain[-1]:.2f} s, vaekit {ours[-1]:.2f} s")
    p, v = statistics.median(plain), statistics.median(ours)
    print(f"plain PyTorch loop: {p:.2f} s/epoch ({len(x) / p:,.0f} images/s)")
    print(f"vaekit fit:         {v:.2f} s/epoch ({len(x) / v:,.0f} images/s)")
    print(f"ratio vaekit/plain: {v / p:.3f}  (target <= 1.10)")


def _subset(data, n):
    import dataclasses

    return dataclasses.replace(data, x_train=data.x_train[:n], y_train=None)


if __name__ == "__main__":
    main()
