"""Fit times of vaekit's tabular VAE and SDV's TVAE on the same training rows, one after the other
in one run, alone on the machine: the ratio bench/tables.py's targets are about.

    python bench/tables_timing.py [--tables penguins,credit_data,attrition,ames] [--threads 1] [--repeats 1]

Uses the training rows and SDV metadata that bench/tables.py wrote (bench/work/<table>/)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def vaekit_fit(name: str, threads: int) -> float:
    import torch

    from vaekit.tables.api import TableModel

    torch.set_num_threads(threads)
    model = TableModel(data=str(HERE / "work" / name / "all.csv"))
    t = time.perf_counter()
    model.fit()
    return time.perf_counter() - t


def tvae_fit(name: str, threads: int) -> float:
    import tables

    d = HERE / "work" / name
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [str(tables.sdv_python()), str(HERE / "tables_peers.py"), "--train", str(d / "train.csv")]
    cmd += ["--metadata", str(d / "sdv_metadata.json"), "--peer", "tvae", "--n", "10", "--out", str(d / "timing.csv")]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
    return json.loads(out)["fit_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="penguins,credit_data,attrition,ames")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    import torch

    from vaekit.tables.api import TableModel

    torch.set_num_threads(args.threads)
    TableModel(
        data="penguins", max_epochs=1
    ).fit()  # the first optimizer imports torch._dynamo (about 2 s), once a process
    print("| table | vaekit fit | TVAE fit | ratio |\n|---|---|---|---|")
    for name in args.tables.split(","):
        for _ in range(args.repeats):
            v, t = vaekit_fit(name, args.threads), tvae_fit(name, args.threads)
            print(f"| {name} | {v:.1f} s | {t:.1f} s | {v / t:.2f} |", flush=True)


if __name__ == "__main__":
    main()
