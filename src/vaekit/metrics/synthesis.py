"""How good a synthetic table is, each figure beside its floor (real held-out rows in the synthetic
rows' place, measured against the same real training rows).

- Column shapes and pair trends are SDMetrics' QualityReport (MIT), computed here with numpy the
  way SDMetrics 0.32 defines them, so the figures compare with published ones (a test checks
  agreement): per column, 1 - KS statistic for numbers and dates, 1 - total variation distance for
  labels (missing cells dropped); per pair, 1 - |r_real - r_synth| / 2 (Pearson, rows with both
  cells) for two numeric columns, else 1 - total variation distance of the pair's joint
  frequencies, a numeric column cut into 10 equal-width bins of its own table's range and a
  missing cell its own value. Quality is the mean of the two means.
- Detection: the ROC AUC of a logistic regression telling real training rows from synthetic ones
  (3-fold cross-validation); 0.5 means it cannot tell.
- Machine-learning efficacy: a gradient-boosted model of one target column trained on synthetic
  rows and tested on the real held-out rows (accuracy for labels, R^2 for numbers), beside the same
  model trained on the real training rows.
- Privacy: the distance from each synthetic row to its closest training row (numbers standardised,
  labels one-hot, a missing cell its own indicator), median and 5th percentile, beside held-out
  rows' distances; and how many synthetic rows copy a training row exactly.

scikit-learn (the `metrics` extra) fits the detection and efficacy models.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from vaekit.errors import VaekitError
from vaekit.tables.columns import LABELLED, Schema
from vaekit.tables.csvfiles import RawTable
from vaekit.tables.kinds import seconds

BINS = 10  # numeric columns in pair trends: np.histogram_bin_edges' default, as SDMetrics


def numbers(col, cells: list[str | None]) -> np.ndarray:
    """A numeric column's cells as float (seconds for dates), NaN where missing."""
    seen = [i for i, c in enumerate(cells) if c is not None]
    out = np.full(len(cells), np.nan)
    if seen:
        vals = [cells[i] for i in seen]
        out[seen] = seconds(vals, col.fmt) if col.kind == "datetime" else np.array(vals, dtype=float)
    return out


def ks_complement(a: np.ndarray, b: np.ndarray) -> float:
    """1 - sup |F_a - F_b| of the two empirical distributions (missing values dropped)."""
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    if not len(a) or not len(b):
        return float("nan")
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(1 - np.abs(fa - fb).max())


def _frequencies(values: list) -> dict:
    keys, counts = np.unique(np.array(values, dtype=object).astype(str), return_counts=True)
    return dict(zip(keys, counts / counts.sum()))


def tv_complement(a: list, b: list, dropna: bool = True) -> float:
    """1 - (1/2) sum_v |p_a(v) - p_b(v)| over the values of either side."""
    if dropna:
        a, b = [v for v in a if v is not None], [v for v in b if v is not None]
    if not a or not b:
        return float("nan")
    pa, pb = _frequencies(a), _frequencies(b)
    return float(1 - 0.5 * sum(abs(pa.get(k, 0) - pb.get(k, 0)) for k in set(pa) | set(pb)))


def _binned(x: np.ndarray) -> list:
    """Equal-width bins of this column's own observed range (np.digitize: a missing value gets the
    index past the last edge)."""
    seen = x[~np.isnan(x)]
    edges = np.histogram_bin_edges(seen) if len(seen) else np.zeros(BINS + 1)
    return list(np.digitize(x, edges))


class Typed:
    """A table's modelled columns as arrays: numbers (NaN missing) or label lists (None missing)."""

    def __init__(self, table: RawTable, schema: Schema):
        self.schema, self.n = schema, table.n_rows
        self.cols = {}
        for c in schema.columns:
            if c.name not in table.names:
                raise VaekitError(f"table '{table.source}' has no column {c.name!r}")
            cells = table.column(c.name)
            self.cols[c.name] = list(cells) if c.kind in LABELLED else numbers(c, cells)

    def without(self, name: str) -> Typed:
        """The same rows without column `name`."""
        t = Typed.__new__(Typed)
        t.schema, t.n, t.cols = self.schema, self.n, {k: v for k, v in self.cols.items() if k != name}
        return t

    def numeric(self, name: str) -> bool:
        return not isinstance(self.cols[name], list)

    def pair_values(self, name: str) -> list:
        """The column as pair trends see it: numbers binned, labels as they are (None kept)."""
        v = self.cols[name]
        return _binned(v) if self.numeric(name) else v


def column_shapes(real: Typed, synth: Typed) -> dict[str, float]:
    return {
        name: ks_complement(real.cols[name], synth.cols[name])
        if real.numeric(name)
        else tv_complement(real.cols[name], synth.cols[name])
        for name in real.cols
    }


def pair_trends(real: Typed, synth: Typed) -> dict[str, float]:
    out = {}
    for a, b in itertools.combinations(real.cols, 2):
        if real.numeric(a) and real.numeric(b):
            out[f"{a} / {b}"] = 1 - abs(_pearson(real, a, b) - _pearson(synth, a, b)) / 2
        else:
            ra = list(zip(real.pair_values(a), real.pair_values(b)))
            sa = list(zip(synth.pair_values(a), synth.pair_values(b)))
            out[f"{a} / {b}"] = tv_complement([str(p) for p in ra], [str(p) for p in sa], dropna=False)
    return out


def _pearson(t: Typed, a: str, b: str) -> float:
    x, y = t.cols[a], t.cols[b]
    both = ~np.isnan(x) & ~np.isnan(y)
    if both.sum() < 2 or x[both].std() == 0 or y[both].std() == 0:
        return float("nan")
    return float(np.corrcoef(x[both], y[both])[0, 1])


def quality(real: Typed, synth: Typed) -> dict[str, Any]:
    shapes, pairs = column_shapes(real, synth), pair_trends(real, synth)
    s, p = float(np.nanmean(list(shapes.values()))), float(np.nanmean(list(pairs.values()) or [np.nan]))
    overall = float(np.nanmean([s, p]))
    return {"overall": overall, "column_shapes": s, "pair_trends": p, "columns": shapes, "pairs": pairs}


def features(t: Typed, reference: Typed) -> np.ndarray:
    """Rows as numbers for the classifiers and distances: each numeric column standardised by the
    reference (training) rows with a missing indicator, each label column one-hot (its reference
    labels) with a missing indicator. (N, E) float64."""
    parts = []
    for name, ref in reference.cols.items():
        v = t.cols[name]
        if reference.numeric(name):
            mu, sd = np.nanmean(ref), np.nanstd(ref) or 1.0
            miss = np.isnan(v)
            parts += [np.where(miss, 0.0, (v - mu) / sd)[:, None], miss[:, None].astype(float)]
        else:
            labels = sorted({x for x in ref if x is not None})
            index = {lab: i for i, lab in enumerate(labels)}
            onehot = np.zeros((t.n, len(labels) + 1))
            for i, x in enumerate(v):
                onehot[i, index.get(x, len(labels)) if x is not None else len(labels)] = 1
            parts.append(onehot)
    return np.concatenate(parts, 1)


def detection_auc(real: Typed, other: Typed, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a logistic regression separating `real` rows from `other` rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.concatenate([features(real, real), features(other, real)])
    y = np.r_[np.zeros(real.n), np.ones(other.n)]
    cv = StratifiedKFold(3, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=cv, scoring="roc_auc").mean())


def efficacy(fit_rows: Typed, test_rows: Typed, target: str, reference: Typed, seed: int = 0) -> float:
    """A gradient-boosted model of `target` from the other columns, fitted on `fit_rows` and scored
    on `test_rows` (rows whose target is missing left out): accuracy for a label, R^2 for a number."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    numeric = reference.numeric(target)

    def xy(t: Typed) -> tuple[np.ndarray, np.ndarray]:
        x, y = features(t.without(target), reference.without(target)), t.cols[target]
        seen = ~np.isnan(y) if numeric else np.array([v is not None for v in y])
        return x[seen], (y[seen] if numeric else np.array(y, dtype=object)[seen].astype(str))

    (xf, yf), (xt, yt) = xy(fit_rows), xy(test_rows)
    if numeric:
        model = HistGradientBoostingRegressor(random_state=seed)
    else:
        if len(set(yf)) < 2:
            return 0.0 if not len(yt) else float(np.mean(yt == yf[0]))
        model = HistGradientBoostingClassifier(random_state=seed)
    return float(model.fit(xf, yf).score(xt, yt))


def closest_distances(rows: Typed, train: Typed, chunk: int = 2048) -> np.ndarray:
    """Each row's Euclidean distance to its closest training row, in the `features` space: (N,)."""
    import torch

    a = torch.from_numpy(features(rows, train))
    b = torch.from_numpy(features(train, train))
    return torch.cat(
        [
            torch.cdist(a[i : i + chunk], b, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
            for i in range(0, len(a), chunk)
        ]
    ).numpy()


def exact_copies(rows: RawTable, train: RawTable, names: list[str]) -> int:
    """How many rows equal some training row cell for cell (over the modelled columns)."""
    key = lambda t: set(zip(*[t.column(n) for n in names]))
    seen = key(train)
    return sum(r in seen for r in zip(*[rows.column(n) for n in names]))


def synthesis_report(
    train: RawTable, holdout: RawTable, synth: RawTable, schema: Schema, target: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Every figure of the module docstring for `synth`, beside the floor (`holdout` in its place)."""
    if target is not None and target not in schema.names:
        raise VaekitError(f"--target {target!r} is not a modelled column; the columns are {schema.names}")
    tr, ho, sy = Typed(train, schema), Typed(holdout, schema), Typed(synth, schema)
    q_syn, q_floor = quality(tr, sy), quality(tr, ho)
    d_syn, d_floor = closest_distances(sy, tr), closest_distances(ho, tr)
    out: dict[str, Any] = {
        "rows": {"train": train.n_rows, "holdout": holdout.n_rows, "synthetic": synth.n_rows},
        "quality": _pair(q_syn["overall"], q_floor["overall"]),
        "column_shapes": _pair(q_syn["column_shapes"], q_floor["column_shapes"]),
        "pair_trends": _pair(q_syn["pair_trends"], q_floor["pair_trends"]),
        "columns": {k: _pair(v, q_floor["columns"][k]) for k, v in q_syn["columns"].items()},
        "detection_auc": _pair(detection_auc(tr, sy, seed), detection_auc(tr, ho, seed)),
        "closest_distance_median": _pair(float(np.median(d_syn)), float(np.median(d_floor))),
        "closest_distance_p05": _pair(float(np.quantile(d_syn, 0.05)), float(np.quantile(d_floor, 0.05))),
        "exact_copies": _pair(exact_copies(synth, train, schema.names), exact_copies(holdout, train, schema.names)),
    }
    if target is not None:
        out["efficacy"] = {
            "target": target,
            "metric": "R^2" if tr.numeric(target) else "accuracy",
            **_pair(efficacy(sy, ho, target, tr, seed), efficacy(tr, ho, target, tr, seed), name="trained_on_real"),
        }
    return out


def _pair(value: float, floor: float, name: str = "floor") -> dict[str, float]:
    return {"value": value, name: floor}


def report_lines(r: dict[str, Any]) -> list[str]:
    """The report as text: each figure, then its floor."""
    rows = r["rows"]
    lines = [
        f"{rows['synthetic']:,} synthetic rows against {rows['train']:,} training rows; "
        f"the floor: {rows['holdout']:,} held-out real rows in their place",
        f"{'':28s}{'synthetic':>12s}{'floor':>12s}",
    ]
    for key, label in (
        ("quality", "quality (SDMetrics)"),
        ("column_shapes", "  column shapes"),
        ("pair_trends", "  pair trends"),
        ("detection_auc", "detection AUC (0.5 ideal)"),
        ("closest_distance_median", "distance to training, median"),
        ("closest_distance_p05", "distance to training, 5%"),
        ("exact_copies", "exact copies of training rows"),
    ):
        v = r[key]
        lines.append(f"{label:28s}{v['value']:>12.4g}{v['floor']:>12.4g}")
    if "efficacy" in r:
        e = r["efficacy"]
        lines.append(
            f"{'efficacy, ' + e['target'] + ' ' + e['metric']:28s}{e['value']:>12.4g}{e['trained_on_real']:>12.4g}"
            "  (trained on real rows)"
        )
    return lines
