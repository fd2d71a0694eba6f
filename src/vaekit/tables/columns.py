"""A table's schema: each column's kind, labels, units and missing rate, saved with a run as JSON.

The schema turns text cells into model units and back. Model units, per kind (NaN where a cell is
missing):

- continuous: (x - loc) / scale, loc and scale the mean and standard deviation of the column;
- positive: (log x - loc) / scale;
- datetime: (seconds - loc) / scale, seconds since 1970-01-01 UTC;
- count: x itself (loc and scale describe log(1 + x), for the encoder's input);
- categorical, ordinal, boolean: the label's index.

Written back, numbers keep the column's decimals, dates its format, categories their spelling.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from vaekit.errors import VaekitError
from vaekit.tables import kinds
from vaekit.tables.csvfiles import RawTable

NUMERIC = ("continuous", "positive", "datetime", "count")
LABELLED = ("categorical", "boolean", "ordinal")
SCHEMA_FORMAT = "vaekit-table-schema"


@dataclass
class Column:
    """One modelled column. labels: categorical/boolean/ordinal levels in index order; loc, scale:
    the standardisation (see the module); low, high: the observed range in the user's units;
    decimals: digits after the point when written (None: as many as needed); fmt: a date format."""

    name: str
    kind: str
    missing_rate: float
    labels: list[str] | None = None
    loc: float = 0.0
    scale: float = 1.0
    low: float | None = None
    high: float | None = None
    decimals: int | None = None
    fmt: str | None = None
    note: str = ""

    @property
    def n_labels(self) -> int:
        return len(self.labels or ())


@dataclass
class Schema:
    """The modelled columns in table order, the dropped ones with why, and the training row count."""

    columns: list[Column]
    dropped: list[dict[str, str]] = field(default_factory=list)
    rows: int = 0
    source: str = ""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SCHEMA_FORMAT,
            "version": 1,
            "source": self.source,
            "rows": self.rows,
            "columns": [dataclasses.asdict(c) for c in self.columns],
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, d: Any, where: str = "schema.json") -> Schema:
        if not isinstance(d, dict) or d.get("format") != SCHEMA_FORMAT or d.get("version") != 1:
            raise VaekitError(f"'{where}' is not a vaekit table schema (format {SCHEMA_FORMAT!r}, version 1)")
        names = {f.name for f in dataclasses.fields(Column)}
        try:
            cols = [Column(**{k: v for k, v in c.items() if k in names}) for c in d["columns"]]
        except (TypeError, KeyError, AttributeError) as e:
            raise VaekitError(f"'{where}': a column entry is damaged ({e})") from None
        for c in cols:
            if c.kind not in kinds.KINDS or (c.kind in LABELLED and not c.labels):
                raise VaekitError(f"'{where}': column {c.name!r} has kind {c.kind!r} without what it needs")
        return cls(cols, list(d.get("dropped", [])), int(d.get("rows", 0)), str(d.get("source", "")))

    def save(self, path) -> None:
        from vaekit.training.checkpoints import write_text_durable

        write_text_durable(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> Schema:
        from vaekit.training.checkpoints import read_json

        return cls.from_json(read_json(path), str(path))

    # ---- text cells <-> model units -------------------------------------------------------------

    def encode(self, raw: RawTable) -> np.ndarray:
        """The table's modelled columns in model units: (N, F) float64, NaN where missing. Refuses a
        missing column, a cell of the wrong kind, or a label the training table did not have."""
        out = np.full((raw.n_rows, len(self.columns)), np.nan)
        for j, col in enumerate(self.columns):
            if col.name not in raw.names:
                raise VaekitError(
                    f"table '{raw.source}' has no column {col.name!r} (the model's columns: {self.names})"
                )
            cells = raw.column(col.name)
            seen = [i for i, c in enumerate(cells) if c is not None]
            if seen:
                out[seen, j] = to_units(col, [cells[i] for i in seen], raw.source)
        return out

    def decode(self, units: np.ndarray) -> list[list[str | None]]:
        """Model units (N, F), NaN where missing, as text cells: F columns of N (None where missing)."""
        cols = []
        for j, col in enumerate(self.columns):
            v = units[:, j]
            texts = from_units(col, np.nan_to_num(v))
            cols.append([None if math.isnan(a) else t for a, t in zip(v, texts)])
        return cols

    def summary(self) -> list[str]:
        """What `vaekit data info` prints: one line per column."""
        lines = [
            f"{self.rows:,} rows, {len(self.columns)} columns modelled"
            + (f", {len(self.dropped)} dropped" if self.dropped else "")
        ]
        for c in self.columns:
            if c.kind in LABELLED:
                shown = [repr(v) if any(ch in v for ch in ",\n\r\t") else v for v in c.labels[:6]]
                what = f"{c.n_labels} labels: " + ", ".join(shown) + (", ..." if c.n_labels > 6 else "")
            elif c.kind == "datetime":
                what = f"{c.fmt}, {_date(c.low, c.fmt)} to {_date(c.high, c.fmt)}"
            else:
                what = f"{c.low:g} to {c.high:g}"
            note = f" ({c.note})" if c.note else ""
            lines.append(f"  {c.name}: {c.kind}{note}, {what}, {100 * c.missing_rate:.1f}% missing")
        for d in self.dropped:
            lines.append(f"  {d['name']}: dropped, {d['reason']}")
        return lines


def _date(sec: float | None, fmt: str | None) -> str:
    return datetime.fromtimestamp(sec, timezone.utc).strftime(fmt) if sec is not None and fmt else "?"


def infer_schema(raw: RawTable, overrides: dict[str, Any] | None = None, max_categories: int = 1000) -> Schema:
    """Each column's kind (inferred, or set in `overrides`: a kind, 'drop', or an ordinal's levels
    as a list) and its units from the training table."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(raw.names))
    if unknown:
        raise VaekitError(f"columns {unknown} are set but table '{raw.source}' has no such column; it has {raw.names}")
    columns, dropped = [], []
    for name, cells in zip(raw.names, raw.cells):
        values = [c for c in cells if c is not None]
        kind, note = _kind(name, overrides.get(name), values, raw, max_categories)
        if kind == "drop":
            dropped.append({"name": name, "reason": note or "set to 'drop'"})
            continue
        col = Column(name, kind, missing_rate=1 - len(values) / raw.n_rows, note=note)
        if not values:
            raise VaekitError(f"table '{raw.source}' column {name!r}: every cell is missing; drop the column")
        fit_units(col, values, overrides.get(name), raw.source)
        columns.append(col)
    if not columns:
        raise VaekitError(f"table '{raw.source}': no column is left to model ({len(dropped)} dropped)")
    return Schema(columns, dropped, raw.n_rows, raw.source)


def _kind(name: str, override: Any, values: list[str], raw: RawTable, max_categories: int) -> tuple[str, str]:
    if override is None:
        return kinds.infer_kind(name, values, raw.n_rows, max_categories, raw.source)
    if isinstance(override, list):
        return "ordinal", ""
    if override != "drop" and override not in kinds.KINDS:
        raise VaekitError(
            f"column {name!r}: kind {override!r} is not one of {', '.join(kinds.KINDS)}, 'drop' or a list of levels"
        )
    return override, ""


def fit_units(col: Column, values: list[str], override: Any, where: str) -> None:
    """Set col's labels or standardisation and format from its observed cells."""
    if col.kind in LABELLED:
        col.labels = _labels(col, values, override, where)
        return
    if col.kind == "datetime":
        col.fmt = kinds.date_format(values)
        if col.fmt is None:
            raise VaekitError(
                f"table '{where}' column {col.name!r} is set to datetime but its cells share no date format"
            )
        x = kinds.seconds(values, col.fmt)
    else:
        x = kinds.parse_numbers(col.name, values, where)
        col.decimals = None if any("e" in v.lower() for v in values) else max(_decimals(v) for v in values)
    col.low, col.high = float(x.min()), float(x.max())
    units = _standardised_input(col, x, where)
    col.loc, col.scale = float(units.mean()), float(units.std())
    if not col.scale > 0:
        col.scale = 1.0


def _standardised_input(col: Column, x: np.ndarray, where: str) -> np.ndarray:
    """The values whose mean and deviation standardise the column (see the module)."""
    if col.kind == "positive":
        if x.min() <= 0:
            raise VaekitError(f"table '{where}' column {col.name!r} is positive but holds {x.min():g}")
        return np.log(x)
    if col.kind == "count":
        if x.min() < 0 or not np.all(x == np.round(x)):
            bad = x[(x < 0) | (x != np.round(x))][0]
            raise VaekitError(
                f"table '{where}' column {col.name!r} is a count but holds {bad:g} (counts are 0, 1, 2, ...)"
            )
        return np.log1p(x)
    return x


def _decimals(v: str) -> int:
    return len(v) - v.index(".") - 1 if "." in v else 0


def _labels(col: Column, values: list[str], override: Any, where: str) -> list[str]:
    distinct = set(values)
    if col.kind == "boolean":
        labels = kinds.boolean_labels(values) if len(distinct) == 2 else None
        if labels is None:
            raise VaekitError(
                f"table '{where}' column {col.name!r} is boolean but holds {len(distinct)} values "
                f"({sorted(distinct)[:4]})"
            )
        return labels
    if isinstance(override, list):
        levels = [str(v) for v in override]
        extra = sorted(distinct - set(levels))
        if extra:
            raise VaekitError(f"table '{where}' column {col.name!r} holds {extra[:3]}, not among its levels {levels}")
        return levels
    if all(kinds.NUMBER.match(v) for v in distinct):
        return sorted(distinct, key=float)
    if col.kind == "ordinal":
        raise VaekitError(f"column {col.name!r}: an ordinal column of words needs its levels in order, as a list")
    return sorted(distinct)


def to_units(col: Column, values: list[str], where: str) -> np.ndarray:
    """Observed cells of one column in model units (see the module)."""
    if col.kind in LABELLED:
        index = {label: i for i, label in enumerate(col.labels)}
        if col.kind == "boolean":  # a boolean's spelling may change case between files
            index.update({label.lower(): i for i, label in enumerate(col.labels)})
        out = np.empty(len(values))
        for i, v in enumerate(values):
            k = index.get(v, index.get(v.lower()) if col.kind == "boolean" else None)
            if k is None:
                raise VaekitError(
                    f"table '{where}' column {col.name!r}: {v[:40]!r} is not one of its {col.n_labels} labels "
                    f"({', '.join(col.labels[:5])}{', ...' if col.n_labels > 5 else ''})"
                )
            out[i] = k
        return out
    if col.kind == "datetime":
        try:
            x = kinds.seconds(values, col.fmt)
        except ValueError as e:
            raise VaekitError(f"table '{where}' column {col.name!r}: {e} (dates are written {col.fmt})") from None
    else:
        x = kinds.parse_numbers(col.name, values, where)
    units = _standardised_input(col, x, where)  # refuses what the kind cannot hold
    return x if col.kind == "count" else (units - col.loc) / col.scale


def from_units(col: Column, v: np.ndarray) -> list[str]:
    """Model units (N,) of one column as text in the column's format."""
    if col.kind in LABELLED:
        idx = np.clip(np.round(v).astype(np.int64), 0, col.n_labels - 1)
        return [col.labels[i] for i in idx]
    if col.kind == "count":
        return [str(int(a)) for a in np.maximum(np.round(v), 0)]
    x = user_units(col, v)
    if col.kind == "datetime":
        return [datetime.fromtimestamp(float(a), timezone.utc).strftime(col.fmt) for a in x]
    if col.decimals is None:
        return [f"{a:.6g}" for a in x]
    return [f"{a:.{col.decimals}f}" for a in x]


def user_units(col: Column, v: np.ndarray) -> np.ndarray:
    """A numeric column's model units as the user's units (seconds for a datetime)."""
    if col.kind == "positive":
        return np.exp(v * col.scale + col.loc)
    if col.kind == "count":
        return v
    return v * col.scale + col.loc


def model_units(col: Column, x: np.ndarray) -> np.ndarray:
    """The inverse of `user_units`."""
    if col.kind == "positive":
        return (np.log(x) - col.loc) / col.scale
    if col.kind == "count":
        return x
    return (x - col.loc) / col.scale
