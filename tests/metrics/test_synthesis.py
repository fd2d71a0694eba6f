"""The synthetic-table figures: SDMetrics' QualityReport reproduced, and each figure doing its job."""

from __future__ import annotations

import numpy as np
import pytest
from tablecases import mixed_table

from vaekit.metrics.synthesis import (
    Typed,
    closest_distances,
    detection_auc,
    efficacy,
    exact_copies,
    ks_complement,
    quality,
    synthesis_report,
    tv_complement,
)
from vaekit.tables.columns import infer_schema
from vaekit.tables.csvfiles import RawTable, to_frame


def _sdv_metadata(schema):
    sd = {"continuous": "numerical", "positive": "numerical", "count": "numerical", "datetime": "datetime"}
    cols = {}
    for c in schema.columns:
        kind = sd.get(c.kind, "categorical")
        cols[c.name] = {"sdtype": kind, **({"datetime_format": c.fmt} if kind == "datetime" else {})}
    return {"columns": cols}


def _frame(table, schema):
    import pandas as pd

    f = to_frame(table)[schema.names]
    for c in schema.columns:
        if c.kind in ("continuous", "positive", "count"):
            f[c.name] = pd.to_numeric(f[c.name])
    return f


def _shuffled(table: RawTable, seed: int, shift: float) -> RawTable:
    """A different table of the same kind: another sample, with every temperature moved by `shift`."""
    other = mixed_table(n=table.n_rows, seed=seed)
    j = other.names.index("temp")
    other.cells[j] = [None if v is None else f"{float(v) + shift:.2f}" for v in other.cells[j]]
    return other


def test_quality_agrees_with_sdmetrics():
    from sdmetrics.reports.single_table import QualityReport

    real = mixed_table(n=300, seed=0)
    schema = infer_schema(real)
    synth = _shuffled(real, 1, 3.0)
    ours = quality(Typed(real, schema), Typed(synth, schema))
    report = QualityReport()
    report.generate(_frame(real, schema), _frame(synth, schema), _sdv_metadata(schema), verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    assert ours["column_shapes"] == pytest.approx(props["Column Shapes"], abs=1e-9)
    assert ours["pair_trends"] == pytest.approx(props["Column Pair Trends"], abs=1e-9)
    assert ours["overall"] == pytest.approx(report.get_score(), abs=1e-9)


def test_ks_and_tv_complements():
    a = np.array([1.0, 2.0, 3.0, np.nan])
    assert ks_complement(a, a) == 1 and ks_complement(a, a + 10) == 0
    assert ks_complement(np.array([0.0, 1.0]), np.array([0.5, 1.5])) == pytest.approx(0.5)
    assert tv_complement(["x", "y", None], ["x", "x"]) == pytest.approx(0.5)
    assert tv_complement(["x", None], ["x", "x"], dropna=False) == pytest.approx(0.5)


def test_detection_tells_shifted_rows_apart():
    real = mixed_table(n=400, seed=0)
    s = infer_schema(real)
    same, moved = _shuffled(real, 1, 0.0), _shuffled(real, 1, 3.0)
    assert detection_auc(Typed(real, s), Typed(same, s)) < 0.6
    assert detection_auc(Typed(real, s), Typed(moved, s)) > 0.75


def test_efficacy_falls_when_the_dependence_is_broken():
    real, test = mixed_table(n=400, seed=0), mixed_table(n=200, seed=9)
    s = infer_schema(real)
    scrambled = RawTable(real.names, [list(c) for c in real.cells], "scrambled")
    j = real.names.index("member")
    scrambled.cells[j] = list(np.random.default_rng(0).permutation(np.array(real.cells[j], dtype=object)))
    tr = Typed(real, s)
    good = efficacy(tr, Typed(test, s), "member", tr)
    bad = efficacy(Typed(scrambled, s), Typed(test, s), "member", tr)
    assert good > 0.8 and bad < 0.65
    assert efficacy(tr, Typed(test, s), "temp", tr) > 0.8  # R^2: the cluster sets the temperature


def test_copies_and_distances():
    real = mixed_table(n=200, seed=0)
    s = infer_schema(real)
    copied = real.take(range(50))
    assert exact_copies(copied, real, s.names) == 50
    assert np.all(closest_distances(Typed(copied, s), Typed(real, s)) == 0)
    fresh = mixed_table(n=50, seed=3)
    assert exact_copies(fresh, real, s.names) == 0 and np.all(closest_distances(Typed(fresh, s), Typed(real, s)) > 0)


def test_report_puts_each_figure_beside_its_floor():
    real, holdout = mixed_table(n=300, seed=0), mixed_table(n=100, seed=1)
    s = infer_schema(real)
    r = synthesis_report(real, holdout, holdout, s, target="member")
    for key in ("quality", "column_shapes", "pair_trends", "detection_auc", "closest_distance_median"):
        assert r[key]["value"] == pytest.approx(r[key]["floor"]), key
    assert r["efficacy"]["metric"] == "accuracy" and r["rows"]["synthetic"] == 100
