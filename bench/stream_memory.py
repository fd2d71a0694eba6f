"""Streaming an image folder: images per second and peak memory as the folder grows.

Generates a folder of small PNGs (32x32 RGB, 10 class sub-folders; made once and reused), then
for each size N trains one epoch of a small MLP VAE (3072-256-16) on a folder of the first N images
(symbolic links), each run in a fresh process, streamed (data.stream = true, DataLoader workers)
and, for comparison, read into memory. Reported: training images per second over the epoch, and the
peak resident memory of the training process and of its worker processes (getrusage maxrss).
Validation and test splits are fixed at 1,000 images each, so any growth comes from the training data.

    python bench/stream_memory.py [--sizes 10000 30000 100000] [--workers 2] [--folder /tmp/vaekit_pngs]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def make_folder(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    done = sum(1 for _ in folder.rglob("*.png")) if folder.exists() else 0
    if done >= n:
        return
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(n):
        d = folder / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"{i:06d}.png"
        if i < done and f.exists():
            continue
        # a smooth random blob per image, so that PNG compression behaves like on photos of simple things
        yy, xx = np.mgrid[0:32, 0:32]
        c = rng.uniform(8, 24, 2)
        img = np.exp(-((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / rng.uniform(20, 80))[..., None] * rng.uniform(80, 255, 3)
        Image.fromarray((img + rng.uniform(0, 30, (32, 32, 3))).clip(0, 255).astype(np.uint8)).save(f)
    print(f"generated {n} PNGs in {folder} in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def subset(folder: Path, n: int) -> Path:
    """A folder holding (symbolic links to) the first n images, in their class sub-folders."""
    sub = folder.with_name(f"{folder.name}_{n}")
    if sub.exists() and sum(1 for _ in sub.rglob("*.png")) == n:
        return sub
    files = sorted(folder.rglob("*.png"), key=lambda f: f.name)[:n]
    for f in files:
        link = sub / f.parent.name / f.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(f)
    return sub


def child(folder: str, n: int, stream: bool, workers: int, threads: int) -> None:
    """One run: train one epoch on the first n images, print a JSON line of figures."""
    import tempfile

    import torch

    import vaekit
    from vaekit.data.prepared import list_images

    torch.set_num_threads(threads)
    total = len(list_images(Path(folder))[0])
    sets = [
        f"data.name={folder}",
        f"data.stream={'true' if stream else 'false'}",
        f"data.workers={workers}",
        "data.val_size=1000",
        "data.test_size=1000",
        "data.dequantize=uniform",
        "model.name=vae",
        "model.arch=mlp",
        "model.hidden=[256]",
        "model.latent_dim=16",
        "model.likelihood=gaussian_shared",
        "train.epochs=1",
        "train.batch_size=128",
        "train.eval_k=0",
        "train.progress=false",
    ]
    with tempfile.TemporaryDirectory() as t:
        start = time.perf_counter()
        run = vaekit.train(run_dir=Path(t) / "run", overrides=sets, pictures=False)
        wall = time.perf_counter() - start
    epoch_s = run["history"][0]["seconds"]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "n": n,
                "folder_images": total,
                "stream": stream,
                "train_images": total - 2000,
                "epoch_s": epoch_s,
                "images_per_s": (total - 2000) / epoch_s,
                "wall_s": wall,
                "peak_rss_mb": own,
                "peak_worker_rss_mb": kids,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000, 100000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--folder", default="/tmp/vaekit_pngs")
    ap.add_argument("--memory-up-to", type=int, default=100000, help="also run in memory for sizes up to this")
    ap.add_argument("--child", nargs=3, metavar=("N", "STREAM", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.folder, int(args.child[0]), args.child[1] == "1", int(args.child[2]), args.threads)
        return
    folder = Path(args.folder)
    make_folder(folder, max(args.sizes))
    import torch

    print(
        f"torch {torch.__version__}, {args.threads} threads, workers {args.workers}, folder {folder} (32x32 RGB PNGs)"
    )
    print(f"{'images':>8} {'mode':>9} {'img/s':>8} {'epoch s':>8} {'peak RSS MB':>12} {'worker peak MB':>15}")
    rows = []
    for n in args.sizes:
        for stream in (True, False):
            if not stream and n > args.memory_up_to:
                continue
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(n),
                    "1" if stream else "0",
                    str(args.workers),
                    "--folder",
                    str(subset(folder, n)),
                    "--threads",
                    str(args.threads),
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(out.returncode)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(
                f"{n:>8} {'stream' if stream else 'memory':>9} {r['images_per_s']:>8.0f} {r['epoch_s']:>8.1f} "
                f"{r['peak_rss_mb']:>12.0f} {r['peak_worker_rss_mb'] if stream else float('nan'):>15.0f}"
            )
    Path("bench_stream_memory.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
