"""The table verbs from the command line: train from a [table] config, describe, sample, impute, score."""

from __future__ import annotations

import csv

import pytest
from tablecases import mixed_table, write_csv

from refusals import assert_one_line
from vaekit.cli import main


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data = write_csv(mixed_table(n=300, seed=2), d / "t.csv")
    cfg = d / "t.toml"
    cfg.write_text(
        f'[table]\ndata = "{data}"\nmax_epochs = 30\nlatent_dim = 4\nhidden = [32]\n\n'
        '[table.columns]\nrating = "count"\n'
    )
    assert main(["train", str(cfg), "--out", str(d / "run"), "--quiet"]) == 0
    return d / "run", data


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_train_writes_a_plain_data_run(table_run, capsys):
    run, _ = table_run
    assert sorted(p.name for p in run.iterdir()) == ["model.json", "model.safetensors", "schema.json"]
    assert '"kind": "count"' in (run / "schema.json").read_text()  # [table.columns] took effect


def test_data_info_prints_the_schema(table_run, capsys):
    _, data = table_run
    assert main(["data", "info", str(data)]) == 0
    out = capsys.readouterr().out
    assert "temp: continuous" in out and "member: boolean" in out and "id: dropped, an identifier" in out


def test_sample_writes_the_training_columns(table_run, tmp_path, capsys):
    run, _ = table_run
    assert main(["sample", str(run), "--n", "200", "--out", str(tmp_path / "s.csv"), "--seed", "1"]) == 0
    rows = _read(tmp_path / "s.csv")
    assert rows[0] == ["temp", "weight", "visits", "colour", "member", "rating", "day"] and len(rows) == 201
    assert main(["sample", str(run), "--n", "50", "--out", str(tmp_path / "w.tsv"), "--where", "member=no"]) == 0
    rows = _read(tmp_path / "w.tsv")
    assert {r[0].split("\t")[4] for r in rows[1:]} == {"no"}
    assert "fixed by importance resampling" in capsys.readouterr().out


def test_impute_fills_only_the_empty_cells(table_run, tmp_path):
    run, data = table_run
    assert main(["impute", str(run), str(data), "--out", str(tmp_path / "f.csv"), "--k", "50"]) == 0
    before, after = _read(data), _read(tmp_path / "f.csv")
    assert before[0] == after[0]  # every column, dropped ones too, in the same order
    j = before[0].index("temp")
    assert any(r[j] == "" for r in before) and all(r[j] != "" for r in after[1:])
    assert all(a[j] == b[j] for a, b in zip(before[1:], after[1:]) if a[j] != "")
    assert main(["impute", str(run), str(data), "--out", str(tmp_path / "m.csv"), "--k", "50", "--multiple", "3"]) == 0
    many = _read(tmp_path / "m.csv")
    assert many[0] == ["imputation", *before[0]] and len(many) == 1 + 3 * (len(before) - 1)


def test_score_writes_log_p_its_error_and_shares(table_run, tmp_path, capsys):
    run, data = table_run
    assert main(["score", str(run), str(data), "--out", str(tmp_path / "s.csv"), "--k", "50"]) == 0
    rows = _read(tmp_path / "s.csv")
    head = rows[0]
    assert head[:3] == ["row", "log_px_nats", "se_nats"] and head[-1] == "share_code"
    for r in rows[1:]:
        total = sum(float(v) for v in r[3:])
        assert total == pytest.approx(float(r[1]), abs=1e-3)
    assert "lowest: row" in capsys.readouterr().out


def test_evaluate_reports_log_p_and_the_synthetic_table_beside_its_floor(table_run, capsys):
    import json

    run, _ = table_run
    assert main(["evaluate", str(run), "--k", "50", "--synthesis", "--target", "member", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows"] == 60 and res["log_px"]["unit"] == "nats" and res["log_px"]["value"] < 0
    assert sum(res["columns"].values()) > res["log_px"]["value"] - 50
    syn = res["synthesis"]
    assert syn["rows"] == {"train": 240, "holdout": 60, "synthetic": 60}
    for key in ("quality", "column_shapes", "pair_trends", "detection_auc", "exact_copies"):
        assert set(syn[key]) == {"value", "floor"}, key
    assert 0 < syn["quality"]["value"] <= 1 and syn["efficacy"]["metric"] == "accuracy"
    assert main(["evaluate", str(run), "--k", "20", "--synthesis", "--n", "100"]) == 0
    out = capsys.readouterr().out
    assert "test log p(x):" in out and "100 synthetic rows against 240 training rows" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["sample", "{run}", "--out", "{tmp}/s.png"], "a table run writes a table: .csv or .tsv"),
        (["sample", "{run}", "--out", "{tmp}/s.csv", "--where", "colour"], "--where 'colour': expected column=value"),
        (["sample", "{run}", "--out", "{tmp}/s.csv", "--where", "x=1"], "where: no column 'x' is modelled"),
        (["sample", "{run}", "--out", "{tmp}/s.csv", "--n", "0"], "--n 0: must be 1.."),
        (["sample", "{run}", "--out", "{tmp}/s.csv", "--sampler", "gmm:0"], "--sampler 'gmm:0'"),
        (["impute", "{run}", "{data}", "--out", "{tmp}/f.csv", "--k", "0"], "--k 0: must be 1..100000"),
        (["impute", "{run}", "{data}", "--out", "{tmp}/f.csv", "--multiple", "-1"], "--multiple -1"),
        (["score", "{run}", "{tmp}/none.csv", "--out", "{tmp}/s.csv"], "does not exist"),
        (["score", "{run}", "{data}", "--out", "{tmp}/s.csv", "--k", "1"], "--k 1: must be 2..100000"),
        (["train", "--set", "table.data={data}", "--set", "model.latent_dim=2", "--out", "{tmp}/r"], "[model]"),
        (
            ["train", "--set", "table.data={data}", "--set", "table.latent=2", "--out", "{tmp}/r"],
            "unknown table setting",
        ),
        (["train", "--set", "table.max_epochs=2", "--out", "{tmp}/r"], "a table run needs its data"),
        (
            ["train", "--set", "table.data={data}", "--set", "table.columns={{ temp = 'nope' }}", "--out", "{tmp}/r"],
            "kind 'nope' is not one of",
        ),
        (["train", "--set", "data.name={data}", "--out", "{tmp}/r"], "[table]"),
        (["evaluate", "{run}", "--target", "member"], "add --synthesis"),
        (["train", "--resume", "{run}"], "is a table run: it trains in one go"),
        (["evaluate", "{run}", "--generation"], "a table run has no images"),
        (["evaluate", "{run}", "--synthesis", "--target", "nope"], "--target 'nope' is not a modelled column"),
    ],
)
def test_bad_table_commands_are_one_line(table_run, tmp_path, capsys, argv, fragment):
    run, data = table_run
    argv = [a.format(run=run, data=data, tmp=tmp_path) for a in argv]
    assert_one_line(main(argv), capsys.readouterr().err, fragment)
    assert not (tmp_path / "r").exists() and not (tmp_path / "s.csv").exists() and not (tmp_path / "f.csv").exists()
