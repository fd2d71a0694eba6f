"""Reading tables and inferring column kinds: what each kind is, overrides, missing cells, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tablecases import mixed_table, write_csv

from vaekit.errors import VaekitError
from vaekit.tables.columns import Schema, infer_schema
from vaekit.tables.csvfiles import RawTable, read_table


def test_every_kind_is_inferred(tmp_path):
    raw = read_table(write_csv(mixed_table(), tmp_path / "t.csv"))
    s = infer_schema(raw)
    kinds = {c.name: c.kind for c in s.columns}
    assert kinds == {
        "temp": "continuous",
        "weight": "positive",
        "visits": "count",
        "colour": "categorical",
        "member": "boolean",
        "rating": "ordinal",
        "day": "datetime",
    }
    assert {d["name"] for d in s.dropped} == {"id", "row"}
    by = {c.name: c for c in s.columns}
    assert by["member"].labels == ["no", "yes"]
    assert by["rating"].labels == ["1", "2", "4", "5"]  # in numeric order (3 never occurs)
    assert by["colour"].labels == sorted({"red", "orange", "blue", "green", "teal"})
    assert by["day"].fmt == "%Y-%m-%d"
    assert by["temp"].decimals == 2 and by["weight"].decimals == 3
    assert 0.05 < by["temp"].missing_rate < 0.15 and by["member"].missing_rate == 0


def test_standardisation_and_missing_mask(tmp_path):
    raw = mixed_table()
    s = infer_schema(raw)
    x = s.encode(raw)
    j = s.names.index("temp")
    seen = ~np.isnan(x[:, j])
    assert seen.sum() == sum(v is not None for v in raw.column("temp"))
    assert x[seen, j].mean() == pytest.approx(0, abs=1e-9) and x[seen, j].std() == pytest.approx(1, rel=1e-9)
    w = s.names.index("weight")  # positive: the log is standardised
    logs = np.log([float(v) for v in raw.column("weight") if v is not None])
    np.testing.assert_allclose(x[~np.isnan(x[:, w]), w], (logs - logs.mean()) / logs.std(), rtol=1e-9)


def test_text_round_trips_through_model_units():
    raw = mixed_table()
    s = infer_schema(raw)
    back = s.decode(s.encode(raw))
    for name, col in zip(s.names, back):
        assert col == raw.column(name), name


def test_overrides_set_kinds_levels_and_drops():
    raw = mixed_table()
    s = infer_schema(
        raw, {"visits": "continuous", "rating": ["5", "4", "3", "2", "1"], "colour": "drop", "row": "count"}
    )
    by = {c.name: c for c in s.columns}
    assert by["visits"].kind == "continuous" and by["rating"].labels == ["5", "4", "3", "2", "1"]
    assert "colour" not in by and by["row"].kind == "count"
    with pytest.raises(VaekitError, match="'visits': kind 'integer' is not one of"):
        infer_schema(raw, {"visits": "integer"})
    with pytest.raises(VaekitError, match=r"columns \['nope'\] are set but"):
        infer_schema(raw, {"nope": "count"})
    with pytest.raises(VaekitError, match="column 'temp' is a count but holds"):
        infer_schema(raw, {"temp": "count"})
    with pytest.raises(VaekitError, match=r"holds \['5'\], not among its levels"):
        infer_schema(raw, {"rating": ["1", "2", "3", "4"]})


def test_missing_tokens_and_user_tokens(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1.5,x\nNA,y\n2.5,N/A\n-1,?\n3,x\n")
    raw = read_table(p, missing=("?",))
    assert raw.column("a") == ["1.5", None, "2.5", "-1", "3"] and raw.column("b") == ["x", "y", None, None, "x"]
    m = tmp_path / "m.csv"
    m.write_text("a\n1\n2\n3\n?\n5\n")
    with pytest.raises(VaekitError, match=r"column 'a' mixes numbers \('1'\) and text \('\?'\)"):
        infer_schema(read_table(m))
    assert infer_schema(read_table(m, missing=("?",))).columns[0].missing_rate == pytest.approx(0.2)


def test_schema_json_round_trip_and_damage(tmp_path):
    s = infer_schema(mixed_table())
    s.save(tmp_path / "schema.json")
    back = Schema.load(tmp_path / "schema.json")
    assert back.to_json() == s.to_json()
    d = json.loads((tmp_path / "schema.json").read_text())
    d["columns"][0]["kind"] = "weird"
    (tmp_path / "schema.json").write_text(json.dumps(d))
    with pytest.raises(VaekitError, match="has kind 'weird'"):
        Schema.load(tmp_path / "schema.json")


def test_a_new_table_is_read_against_the_training_schema():
    s = infer_schema(mixed_table())
    other = mixed_table(n=30, seed=5)
    assert s.encode(other).shape == (30, len(s.columns))
    bad = RawTable(other.names, [list(c) for c in other.cells], "new.csv")
    bad.cells[bad.names.index("colour")][3] = "purple"
    with pytest.raises(VaekitError, match="'purple' is not one of its 5 labels"):
        s.encode(bad)


def test_dataframe_reads_like_its_csv(tmp_path):
    import pandas as pd

    p = write_csv(mixed_table(), tmp_path / "t.csv")
    frame = pd.read_csv(p, keep_default_na=True)
    a, b = (
        infer_schema(read_table(p)),
        infer_schema(__import__("vaekit.tables.csvfiles", fromlist=["x"]).from_dataframe(frame)),
    )
    assert [(c.name, c.kind, c.labels) for c in a.columns] == [(c.name, c.kind, c.labels) for c in b.columns]
