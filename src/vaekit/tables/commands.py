"""The command line's table verbs, thin over `TableModel`: train from a ``[table]`` config, describe
a table, and sample, impute and score with a trained table run.

A table run is the folder `TableModel.save` writes (model.json, schema.json, model.safetensors);
`is_table_run` tells one from an image run by its model.json.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vaekit.errors import VaekitError

TABLE_SUFFIXES = (".csv", ".tsv", ".tab")
MAX_ROWS = 10_000_000  # rows one command may synthesise


def is_table_run(run: str | Path) -> bool:
    return (Path(run) / "model.json").is_file() and (Path(run) / "schema.json").is_file()


def table_config(config: str | None, overrides: list[str]) -> dict[str, Any] | None:
    """The ``[table]`` section of a config (with ``--set table.key=value``), or None when the config
    trains an image or vector model. A config may not mix [table] with [data], [model], [train]."""
    from vaekit.config import apply_overrides, read_file

    raw = read_file(config) if config else {}
    if "table" not in raw and not any(o.split("=", 1)[0].strip().startswith("table.") for o in overrides):
        return None
    other = sorted(set(raw) - {"table"}) + sorted({o.split(".", 1)[0] for o in overrides if not o.startswith("table.")})
    if other:
        raise VaekitError(
            f"a [table] config trains a table model; [{other[0]}] does not apply (its settings are in [table])"
        )
    section = apply_overrides(raw, overrides, sections=("table",)).get("table", {})
    if not isinstance(section, dict):
        raise VaekitError("config key 'table' must be a section: [table]")
    return section


def train_table(section: dict[str, Any], out: str, quiet: bool) -> int:
    from vaekit.tables.api import TableModel
    from vaekit.training.checkpoints import check_out_folder

    check_out_folder(out)
    if Path(out).exists() and any(Path(out).iterdir()):
        raise VaekitError(f"--out '{out}' exists and is not empty; choose a new run folder")
    model = TableModel(section)
    if not model.settings.data:
        raise VaekitError("a table run needs its data: set [table] data = 'table.csv' (or --set table.data=...)")
    model.fit(progress=not quiet)
    model.save(out)
    h = model.history
    print(f"run: {out}")
    print(
        f"trained on {model.train_rows.n_rows:,} rows ({model.test_rows.n_rows:,} held out for evaluate); "
        f"validation bound {h.val[h.best_epoch]:.3f} nats per row at epoch {h.best_epoch + 1} of {len(h.train)}"
        if h.val
        else f"trained on {model.train_rows.n_rows:,} rows for {len(h.train)} epochs"
    )
    return 0


def is_mixed_table(name: str) -> bool:
    """Whether `vaekit data info NAME` describes a table of column kinds: a .tsv file, or a .csv
    file that is not all numbers (an all-numeric CSV without gaps stays a file of vectors)."""
    from vaekit.data.readers import read_csv
    from vaekit.tables.csvfiles import SHIPPED

    if name in SHIPPED and not Path(name).exists():
        return True
    p = Path(name)
    if p.suffix.lower() not in TABLE_SUFFIXES or not p.is_file():
        return False
    if p.suffix.lower() != ".csv":
        return True
    try:
        read_csv(p)
    except VaekitError:
        return True
    return False


def describe_table(path: str, separator: str | None = None) -> list[str]:
    from vaekit.tables.columns import infer_schema
    from vaekit.tables.csvfiles import read_table

    return [f"table {path}"] + infer_schema(read_table(path, separator)).summary()


def _out_table(out: str) -> Path:
    p = Path(out)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise VaekitError(f"--out '{out}': a table run writes a table: .csv or .tsv")
    return p


def _where(items: list[str]) -> dict[str, str]:
    where = {}
    for item in items:
        if "=" not in item:
            raise VaekitError(f"--where '{item}': expected column=value")
        k, v = item.split("=", 1)
        where[k.strip()] = v.strip()
    return where


def sample_table(args) -> int:
    from vaekit.tables.api import TableModel

    if not 0 < args.n <= MAX_ROWS:
        raise VaekitError(f"--n {args.n}: must be 1..{MAX_ROWS:,}")
    out = _out_table(args.out)
    m = TableModel.load(args.run)
    where = _where(args.where or [])
    m.sample(args.n, seed=args.seed, where=where, sampler=args.sampler).to_csv(out)
    how = ""
    if where:
        how = (
            f"; {', '.join(where)} fixed by importance resampling from the {args.sampler} codes "
            f"(effective sample size {m.last_ess:,.0f})"
        )
    print(f"{args.n:,} rows -> {out}{how}")
    return 0


def _table_run(run: str) -> None:
    if not Path(run).exists():
        raise VaekitError(f"run '{run}' does not exist")
    if not is_table_run(run):
        raise VaekitError(
            f"'{run}' is not a table run (no model.json and schema.json): impute and score are for tables"
        )


def impute_table(args) -> int:
    from vaekit.tables.api import Table, TableModel

    _table_run(args.run)
    out = _out_table(args.out)
    if not 0 < args.k <= 100_000:
        raise VaekitError(f"--k {args.k}: must be 1..100000")
    if not 0 <= args.multiple <= 1000:
        raise VaekitError(f"--multiple {args.multiple}: must be 0..1000")
    m = TableModel.load(args.run)
    filled = m.impute(args.data, multiple=args.multiple, k=args.k, seed=args.seed)
    if args.multiple:  # long format: an 'imputation' column 1..M before the table's columns
        first = filled[0]
        cells = [[str(i + 1) for i, t in enumerate(filled) for _ in range(t.n_rows)]]
        cells += [[c for t in filled for c in t.cells[j]] for j in range(len(first.names))]
        filled = Table(["imputation", *first.names], cells, first.source)
    filled.to_csv(out)
    print(f"{'imputed' if not args.multiple else f'{args.multiple} imputations of'} '{args.data}' -> {out}")
    return 0


def score_table(args) -> int:
    import numpy as np

    from vaekit.tables.api import Table, TableModel

    _table_run(args.run)
    out = _out_table(args.out)
    if not 1 < args.k <= 100_000:
        raise VaekitError(f"--k {args.k}: must be 2..100000")
    m = TableModel.load(args.run)
    s = m.score(args.data, k=args.k, seed=args.seed)
    code = s.log_px - s.shares.sum(1)
    cols = [
        [str(i + 1) for i in range(len(s.log_px))],
        [f"{v:.6g}" for v in s.log_px],
        [f"{v:.3g}" for v in s.se],
        *[[f"{v:.6g}" for v in s.shares[:, j]] for j in range(s.shares.shape[1])],
        [f"{v:.6g}" for v in code],
    ]
    names = ["row", "log_px_nats", "se_nats", *[f"share_{n}" for n in m.schema.names], "share_code"]
    Table(names, cols, "scores").to_csv(out)
    low = np.argsort(s.log_px)[:5]
    print(f"{len(s.log_px):,} rows scored (K = {args.k}): mean log p(x) {s.log_px.mean():.3f} nats -> {out}")
    print("lowest: " + ", ".join(f"row {i + 1} ({s.log_px[i]:.2f})" for i in low if math.isfinite(s.log_px[i])))
    return 0


def evaluate_table(args) -> int:
    import json

    from vaekit.metrics.synthesis import report_lines
    from vaekit.tables.api import TableModel

    if args.generation or args.disentanglement:
        raise VaekitError("a table run has no images: use --synthesis for its synthetic rows")
    if args.n is not None and not 0 < args.n <= MAX_ROWS:
        raise VaekitError(f"--n {args.n}: must be 1..{MAX_ROWS:,}")
    if args.target and not args.synthesis:
        raise VaekitError("--target names the column --synthesis predicts; add --synthesis")
    m = TableModel.load(args.run)
    res = m.evaluate(
        k=args.k, synthesis=args.synthesis, n=args.n, sampler=args.sampler, target=args.target, seed=args.seed
    )
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    lp = res["log_px"]["value"]
    print(
        f"test log p(x): {lp:.4f} nats per row (+- {res['log_px_se_rows']:.3f} over {res['rows']:,} held-out rows; "
        f"K = {res['k']})"
    )
    if args.synthesis:
        print("\n".join(report_lines(res["synthesis"])))
    return 0
