"""Small tables the table tests generate: every column kind, with missing cells, as CSV text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaekit.tables.columns import Column, Schema
from vaekit.tables.csvfiles import RawTable


def mixed_table(n: int = 400, seed: int = 0, missing: float = 0.1) -> RawTable:
    """Two clusters that every column follows: continuous, positive, count, categorical, boolean,
    ordinal (few integers) and datetime, plus an id and a row number to drop; `missing` of the
    cells of four columns blanked at random."""
    rng = np.random.default_rng(seed)
    c = rng.random(n) < 0.5  # the cluster
    temp = np.where(c, -5.0, 5.0) + rng.normal(0, 1, n)
    weight = np.exp(np.where(c, 1.0, 2.0) + rng.normal(0, 0.2, n))
    visits = rng.poisson(np.where(c, 1.0, 6.0))
    colour = np.where(c, rng.choice(["red", "orange"], n), rng.choice(["blue", "green", "teal"], n))
    member = np.where(rng.random(n) < np.where(c, 0.9, 0.1), "yes", "no")
    rating = np.clip(np.where(c, 1, 4) + rng.integers(0, 2, n), 1, 5)
    day = np.datetime64("2020-01-01") + np.where(c, 0, 200) + rng.integers(0, 30, n)
    cols = {
        "id": [f"u{i:05d}x" for i in rng.permutation(n)],
        "row": [str(i + 1) for i in range(n)],
        "temp": [f"{v:.2f}" for v in temp],
        "weight": [f"{v:.3f}" for v in weight],
        "visits": [str(v) for v in visits],
        "colour": list(colour),
        "member": list(member),
        "rating": [str(v) for v in rating],
        "day": [str(d) for d in day],
    }
    cells = []
    for name, values in cols.items():
        gone = rng.random(n) < (missing if name in ("temp", "weight", "colour", "visits") else 0)
        cells.append([None if g else v for v, g in zip(values, gone)])
    return RawTable(list(cols), cells, "mixed")


def write_csv(table: RawTable, path: Path) -> Path:
    lines = [",".join(table.names)]
    lines += [",".join("" if v is None else v for v in row) for row in zip(*table.cells)]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_column_schema(kind: str, labels=None, loc: float = 0.0, scale: float = 1.0) -> Schema:
    return Schema([Column("x", kind, 0.0, labels=labels, loc=loc, scale=scale, low=0.0, high=1.0, decimals=3)])
