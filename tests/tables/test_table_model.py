"""A tabular VAE trained on a small generated table: what it answers must be right, not just run.

The table has two clusters that every column follows (tablecases.mixed_table), so a model that
learned it knows, for example, that a red row is cold and usually a member."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tablecases import mixed_table, write_csv

from vaekit.errors import VaekitError
from vaekit.tables.api import Table, TableModel
from vaekit.tables.csvfiles import RawTable

SETTINGS = dict(latent_dim=4, hidden=[64, 64], max_epochs=150, patience=25, seed=0, test_fraction=0.2, batch_size=128)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = write_csv(mixed_table(n=600), tmp_path_factory.mktemp("t") / "t.csv")
    torch.set_num_threads(1)
    return TableModel(**SETTINGS).fit(path), path


def _numbers(col: list[str | None]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in col])


def test_split_and_history(fitted):
    m, _ = fitted
    assert m.train_rows.n_rows == 480 and m.test_rows.n_rows == 120
    h = m.history
    assert len(h.val) == len(h.train) and h.val[h.best_epoch] == max(h.val)
    assert h.val[h.best_epoch] > h.val[0] + 3  # it learned something: nats per row


def test_planted_outliers_score_lowest(fitted):
    m, _ = fitted
    rows = m.test_rows
    odd = [list(r) for r in zip(*rows.cells)][:4]
    for r in odd:  # cold-cluster colour with a hot temperature far out, and a huge weight
        r[rows.names.index("temp")] = "19.00"
        r[rows.names.index("colour")] = "red"
        r[rows.names.index("weight")] = "900.000"
    table = RawTable(rows.names, [list(c) + [r[j] for r in odd] for j, c in enumerate(rows.cells)], "planted")
    s = m.score(table, k=200)
    assert set(np.argsort(s.log_px)[:4]) == set(range(rows.n_rows, rows.n_rows + 4))


def test_scores_add_up_and_skip_missing_cells(fitted):
    m, _ = fitted
    s = m.score(m.test_rows, k=300)
    x = m.encode_rows(m.test_rows).numpy()
    assert np.all(s.shares[np.isnan(x)] == 0)
    code = s.log_px - s.shares.sum(1)
    assert np.all(np.isfinite(code)) and np.all(s.se > 0) and np.median(s.se) < 0.2 and np.all(s.se < 1)
    few = m.score(m.test_rows, k=10)
    assert np.median(few.se) > 2 * np.median(s.se)  # the error shrinks about as 1/sqrt(K)
    assert np.median(s.log_px - few.log_px) > 0  # more samples, a tighter (higher) bound: in expectation


def test_importance_sampled_log_p_is_above_the_elbo(fitted):
    from vaekit.objectives.elbo import elbo_terms

    m, _ = fitted
    x = m.encode_rows(m.test_rows)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = torch.stack([elbo_terms(m.model(x), x)["elbo"] for _ in range(20)]).mean(0).numpy()
    assert np.mean(m.score(m.test_rows, k=500).log_px) > np.mean(elbo)


def _hide(table: RawTable, column: str, fraction: float, seed: int) -> tuple[RawTable, np.ndarray]:
    rng = np.random.default_rng(seed)
    cells = [list(c) for c in table.cells]
    j = table.names.index(column)
    hidden = np.array([v is not None and rng.random() < fraction for v in cells[j]])
    cells[j] = [None if h else v for v, h in zip(cells[j], hidden)]
    return RawTable(table.names, cells, table.source), hidden


def test_imputation_uses_the_other_columns(fitted):
    m, _ = fitted
    truth = m.test_rows
    holed, hidden = _hide(truth, "temp", 0.5, 1)
    filled = m.impute(holed, k=300)
    want = _numbers(truth.column("temp"))[hidden]
    got = _numbers(filled.column("temp"))[hidden]
    mean = np.nanmean(_numbers(holed.column("temp")))
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.4 * np.sqrt(np.mean((mean - want) ** 2))
    holed, hidden = _hide(truth, "member", 0.5, 2)
    filled = m.impute(holed, k=300)
    right = np.mean(np.array(filled.column("member"))[hidden] == np.array(truth.column("member"))[hidden])
    assert right > 0.75  # membership follows the cluster 9 times in 10; a coin would get half
    for name in truth.names:  # observed cells are never touched
        for a, b in zip(holed.column(name), filled.column(name)):
            assert a is None or a == b


def test_multiple_imputations_vary_around_the_single_one(fitted):
    m, _ = fitted
    holed, hidden = _hide(m.test_rows, "temp", 0.5, 3)
    many = m.impute(holed, multiple=30, k=300, seed=1)
    draws = np.stack([_numbers(t.column("temp"))[hidden] for t in many])  # (M, hidden)
    single = _numbers(m.impute(holed, k=300).column("temp"))[hidden]
    assert np.all(draws.std(0) > 0.2)  # draws, not copies: the clusters' spread is 1
    assert np.median(np.abs(draws.mean(0) - single)) < 0.5
    assert 0.5 < np.median(draws.std(0)) < 2.0


def test_synthetic_rows_keep_labels_missing_rates_and_dependence(fitted):
    m, _ = fitted
    s = m.sample(2000, seed=0)
    assert s.names == m.schema.names
    for c in m.schema.columns:
        rate = np.mean([v is None for v in s.column(c.name)])
        assert rate == pytest.approx(c.missing_rate, abs=0.02), c.name
    train = m.train_rows.column("colour")
    freq = lambda col, label: np.mean([v == label for v in col if v is not None])
    for label in m.schema.columns[m.schema.names.index("colour")].labels:
        assert freq(s.column("colour"), label) == pytest.approx(freq(train, label), abs=0.05), label
    temp, colour = _numbers(s.column("temp")), np.array(s.column("colour"), dtype=object)
    cold = np.isin(colour, ["red", "orange"]) & ~np.isnan(temp)
    assert np.mean(temp[cold] < 0) > 0.85  # red and orange rows are the cold cluster's
    # (the prior's mass between the clusters decodes to mixed rows; codes from a mixture fitted to
    # the training codes leave that gap out)
    g = m.sample(2000, seed=0, sampler="gmm:5")
    temp, colour = _numbers(g.column("temp")), np.array(g.column("colour"), dtype=object)
    cold = np.isin(colour, ["red", "orange"]) & ~np.isnan(temp)
    assert np.mean(temp[cold] < 0) > 0.97


def test_rows_with_a_fixed_column(fitted):
    m, _ = fitted
    s = m.sample(500, seed=0, where={"colour": "teal"}, sampler="gmm:5")
    assert set(s.column("colour")) == {"teal"}
    temp = _numbers(s.column("temp"))
    assert np.mean(temp[~np.isnan(temp)] > 0) > 0.9 and m.last_ess > 10
    with pytest.raises(VaekitError, match="where: no column 'nope' is modelled"):
        m.sample(5, where={"nope": "1"})
    with pytest.raises(VaekitError, match="'purple' is not one of its 5 labels"):
        m.sample(5, where={"colour": "purple"})


def test_seeds_repeat_and_differ(fitted):
    m, _ = fitted
    a, b, c = m.sample(50, seed=3), m.sample(50, seed=3), m.sample(50, seed=4)
    assert a.cells == b.cells and a.cells != c.cells


def test_save_and_load_give_the_same_answers(fitted, tmp_path):
    m, _ = fitted
    m.save(tmp_path / "m")
    back = TableModel.load(tmp_path / "m")
    np.testing.assert_array_equal(back.score(m.test_rows, k=50).log_px, m.score(m.test_rows, k=50).log_px)
    assert back.sample(20, seed=1).cells == m.sample(20, seed=1).cells
    blob = (tmp_path / "m" / "model.safetensors").read_bytes()
    (tmp_path / "m" / "model.safetensors").write_bytes(blob[:-9] + bytes(9))
    with pytest.raises(VaekitError, match="damaged"):
        TableModel.load(tmp_path / "m")


def test_a_dataframe_trains_the_same_model_as_its_csv(fitted):
    import pandas as pd

    m, path = fitted
    again = TableModel(**{**SETTINGS, "max_epochs": 3}).fit(path)
    frame = TableModel(**{**SETTINGS, "max_epochs": 3}).fit(pd.read_csv(path))
    for k, v in again.model.state_dict().items():
        torch.testing.assert_close(frame.model.state_dict()[k], v, rtol=0, atol=0)
    out = frame.sample(5).to_frame()
    assert list(out.columns) == m.schema.names and len(out) == 5
    table = pd.read_csv(path)  # impute and score take the DataFrame as they take its CSV
    filled = m.impute(table, k=20).to_frame()
    assert filled.shape == table.shape and filled[m.schema.names].notna().all().all()
    np.testing.assert_array_equal(m.score(table, k=20).log_px, m.score(path, k=20).log_px)


def test_miwae_trains_and_its_bound_is_tighter():
    raw = mixed_table(n=300, seed=4)
    m = TableModel(**{**SETTINGS, "objective": "miwae", "samples": 5, "max_epochs": 30}).fit(raw)
    assert m.history.val[-1] > m.history.val[0]
    with pytest.raises(VaekitError, match="samples > 1 needs table.objective = 'miwae'"):
        TableModel(samples=5)


def test_settings_are_strict():
    with pytest.raises(VaekitError, match="unknown table setting 'table.latent'"):
        TableModel(latent=3)
    with pytest.raises(VaekitError, match="'table.latent_dim': got 0, must be > 0"):
        TableModel(latent_dim=0)
    with pytest.raises(VaekitError, match="table.hidden"):
        TableModel(hidden="wide")
    with pytest.raises(VaekitError, match="is not trained"):
        TableModel().sample(3)
    assert isinstance(TableModel(columns={"a": "count", "b": ["x", "y"]}).settings.columns["b"], list)
    assert Table(["a"], [["1"]], "x").to_frame is not None
