"""Data-parallel training on one machine: 1 process against N torchrun processes, same global batch.

Trains the examples/vae setting (MLP VAE 784-400-20, Bernoulli cross-entropy on [0, 1] pixels,
global batch 128, Adam 1e-3) on 59,000 MNIST training images (1,000 held out), once as one process with T
threads and once under `torchrun --standalone --nproc_per_node=N` with T/N threads per process, so
both use the same cores. Two loops do this: `vaekit train`, and a plain PyTorch loop of the same
model and loss (DistributedDataParallel under torchrun, each rank taking its piece of every global
batch), which tells what data parallelism costs on this machine whoever runs it.

Reports the median training seconds per epoch (vaekit: from metrics.jsonl, validation excluded),
images per second, the wall time of the whole command (start-up, data loading and, for vaekit,
evaluation included) and the last epoch's training loss (the same batches in both settings; the
ranks' noise streams differ from one process's).

    python bench/ddp_scaling.py [--epochs 3] [--procs 2] [--threads 2] [--repeats 3]

Needs MNIST (`vaekit data fetch mnist`; $VAEKIT_DATA is honoured).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
[data]
name = "mnist"
val_size = 1000
[model]
name = "vae"
hidden = [400]
latent_dim = 20
likelihood = "bernoulli"
likelihood_check = false  # cross-entropy on [0, 1] pixels, as examples/vae does
[train]
epochs = {epochs}
batch_size = 128
lr = 1e-3
eval_k = 0
progress = false
"""


def plain_worker(epochs: int, out: Path) -> None:
    """The plain PyTorch loop, in each process of a torchrun job (or alone); rank 0 writes its times."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from throughput import PlainVAE
    from vaekit.data.mnist import load_mnist

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    x = torch.from_numpy(load_mnist(progress=False)["x_train"][:59000]).float().div(255).view(-1, 784)
    torch.manual_seed(rank)
    model = PlainVAE()
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(0)
    times, loss_sum = [], 0.0
    for _ in range(epochs):
        t, loss_sum = time.perf_counter(), 0.0
        for batch in torch.randperm(len(x), generator=order).split(128):  # the global batch
            xb = x[torch.tensor_split(batch, world)[rank]]  # this rank's piece
            recon, mu, logvar = net(xb)
            bce = F.binary_cross_entropy(recon, xb, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (bce + kld) * world / len(batch)  # DDP averages over ranks: the gradient of the global mean
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(batch) / world
        times.append(time.perf_counter() - t)
    total = torch.tensor([loss_sum])
    if world > 1:
        dist.all_reduce(total)
        dist.destroy_process_group()
    if rank == 0:
        (out / "plain.json").write_text(json.dumps({"times": times, "train_loss": float(total) / len(x)}))


def run(cmd: list[str], threads: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"bench failed: {' '.join(cmd)}\n{proc.stderr[-4000:]}")
    if (out / "plain.json").is_file():
        plain = json.loads((out / "plain.json").read_text())
        return {"epoch_s": statistics.median(plain["times"]), "wall_s": wall, "train_loss": plain["train_loss"]}
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = [b["seconds"] - a["seconds"] for a, b in zip([{"seconds": 0.0}] + history, history)]
    return {"epoch_s": statistics.median(seconds), "wall_s": wall, "train_loss": history[-1]["train_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="threads in all (split over the processes)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--plain-worker", metavar="OUT", help=argparse.SUPPRESS)  # internal: one process of the plain loop
    args = ap.parse_args()
    if args.plain_worker:
        return plain_worker(args.epochs, Path(args.plain_worker))
    per = max(1, args.threads // args.procs)
    me = [sys.executable, str(Path(__file__).resolve())]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.procs}"]
    settings = {  # name: (command given its output folder, threads per process)
        "vaekit, 1 process": (
            lambda o: [sys.executable, "-m", "vaekit", "train", "CFG", "--out", str(o), "--quiet"],
            args.threads,
        ),
        f"vaekit, torchrun x {args.procs}": (
            lambda o: torchrun + ["-m", "vaekit", "train", "CFG", "--out", str(o), "--quiet"],
            per,
        ),
        "plain, 1 process": (lambda o: me + ["--epochs", str(args.epochs), "--plain-worker", str(o)], args.threads),
        f"plain DDP, torchrun x {args.procs}": (
            lambda o: torchrun + me[1:] + ["--epochs", str(args.epochs), "--plain-worker", str(o)],
            per,
        ),
    }
    results: dict[str, list[dict]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(CONFIG.format(epochs=args.epochs))
        for r in range(args.repeats):  # alternating, so that the machine's noise hits every setting alike
            for i, (name, (command, threads)) in enumerate(settings.items()):
                out = Path(tmp) / f"{i}-{r}"
                out.mkdir()  # vaekit takes an empty folder as its run directory
                cmd = [str(cfg) if a == "CFG" else a for a in command(out)]
                results[name].append(run(cmd, threads, out))
    print(
        f"MNIST, MLP VAE 784-400-20, global batch 128, {args.epochs} epochs, {args.threads} threads in all, "
        f"medians of {args.repeats}"
    )
    n, med = 59000, {}
    for name, rs in results.items():
        med[name] = statistics.median(r["epoch_s"] for r in rs)
        wall = statistics.median(r["wall_s"] for r in rs)
        print(
            f"  {name:<26} {med[name]:6.2f} s/epoch {n / med[name]:8,.0f} images/s {wall:6.1f} s wall "
            f" last train loss {rs[0]['train_loss']:.2f}"
        )
    names = list(med)
    print(
        f"torchrun / 1 process: vaekit {med[names[1]] / med[names[0]]:.3f}, plain {med[names[3]] / med[names[2]]:.3f}"
    )
    print(
        f"vaekit / plain: 1 process {med[names[0]] / med[names[2]]:.3f}, torchrun {med[names[1]] / med[names[3]]:.3f}"
    )


if __name__ == "__main__":
    main()
