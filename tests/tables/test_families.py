"""Each column's likelihood against scipy, with its Jacobian: log p is in the user's units."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from tablecases import one_column_schema

from vaekit.tables.columns import Column, Schema, model_units, user_units
from vaekit.tables.families import TableObservation, cumulative_logit

pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def log_prob(schema: Schema, params: torch.Tensor, x_user: np.ndarray, components: int = 1, count="negative_binomial"):
    """log p of user-unit values x (B,) of a one-column schema under decoder params (B, P)."""
    col = schema.columns[0]
    obs = TableObservation(schema, components, count)
    x = torch.as_tensor(model_units(col, x_user) if col.kind not in ("categorical", "boolean", "ordinal") else x_user)
    return obs(params).log_prob(x[:, None]).numpy(), obs


def test_gaussian_is_a_density_of_the_users_value():
    s = one_column_schema("continuous", loc=10.0, scale=4.0)
    x = np.array([3.0, 10.0, 17.5])
    mu, log_s = np.array([0.3, -1.0, 2.0]), np.array([-0.5, 0.0, 0.7])
    lp, _ = log_prob(s, torch.tensor(np.stack([mu, log_s], 1)), x)
    want = stats.norm.logpdf(x, loc=10 + 4 * mu, scale=4 * np.exp(log_s))
    np.testing.assert_allclose(lp, want, rtol=1e-10)


def test_positive_is_log_normal():
    s = one_column_schema("positive", loc=1.5, scale=0.5)
    x = np.array([0.5, 4.0, 30.0])
    mu, log_s = np.array([0.0, 1.0, -2.0]), np.array([-1.0, 0.2, 0.5])
    lp, _ = log_prob(s, torch.tensor(np.stack([mu, log_s], 1)), x)
    want = stats.lognorm.logpdf(x, s=0.5 * np.exp(log_s), scale=np.exp(1.5 + 0.5 * mu))
    np.testing.assert_allclose(lp, want, rtol=1e-10)


def test_mixture_is_a_weighted_sum_of_gaussians():
    s = one_column_schema("continuous", loc=-2.0, scale=3.0)
    rng = np.random.default_rng(0)
    p = rng.normal(size=(4, 9))  # 3 weights, 3 means, 3 log-scales
    x = np.array([-10.0, -2.0, 0.0, 7.0])
    lp, _ = log_prob(s, torch.tensor(p), x, components=3)
    w = np.exp(p[:, :3]) / np.exp(p[:, :3]).sum(1, keepdims=True)
    dens = (w * stats.norm.pdf(x[:, None], loc=-2 + 3 * p[:, 3:6], scale=3 * np.exp(p[:, 6:9]))).sum(1)
    np.testing.assert_allclose(lp, np.log(dens), rtol=1e-10)


@pytest.mark.parametrize("kind", ["continuous", "positive"])
@pytest.mark.parametrize("components", [1, 2])
def test_numeric_densities_integrate_to_one_in_user_units(kind, components):
    s = one_column_schema(kind, loc=0.7, scale=0.8)
    p = torch.tensor(np.random.default_rng(1).normal(0, 0.5, size=(1, 2 if components == 1 else 6)))
    _, obs = log_prob(s, p, np.array([1.0]), components)
    dist = obs(p)

    def pdf(v):
        x = torch.tensor(model_units(s.columns[0], np.array([v])))[:, None]
        return math.exp(float(dist.log_prob(x)[0]))

    centre = float(user_units(s.columns[0], np.zeros(1))[0])
    if kind == "positive":
        total = integrate.quad(pdf, 0, centre, limit=400)[0] + integrate.quad(pdf, centre, np.inf, limit=400)[0]
    else:
        total = integrate.quad(pdf, -np.inf, centre, limit=400)[0] + integrate.quad(pdf, centre, np.inf, limit=400)[0]
    assert total == pytest.approx(1.0, abs=1e-6)


def test_datetime_density_is_per_second():
    s = one_column_schema("datetime", loc=1.6e9, scale=86400.0 * 30)
    x = np.array([1.6e9 - 1e6, 1.6e9 + 5e6])
    lp, _ = log_prob(s, torch.tensor([[0.1, -0.3], [0.5, 0.2]]), x)
    want = stats.norm.logpdf(
        x, loc=1.6e9 + s.columns[0].scale * np.array([0.1, 0.5]), scale=s.columns[0].scale * np.exp([-0.3, 0.2])
    )
    np.testing.assert_allclose(lp, want, rtol=1e-9)


def test_negative_binomial_and_poisson_match_scipy():
    s = one_column_schema("count", loc=1.2)  # log mean offset
    k = np.array([0.0, 3.0, 17.0])
    p = np.array([[0.0, 0.5], [1.0, -1.0], [0.5, 2.0]])
    lp, _ = log_prob(s, torch.tensor(p), k)
    mean, r = np.exp(p[:, 0] + 1.2), np.exp(p[:, 1])
    np.testing.assert_allclose(lp, stats.nbinom.logpmf(k, r, r / (r + mean)), rtol=1e-10)
    lp, _ = log_prob(s, torch.tensor(p[:, :1]), k, count="poisson")
    np.testing.assert_allclose(lp, stats.poisson.logpmf(k, np.exp(p[:, 0] + 1.2)), rtol=1e-10)


def test_categorical_and_boolean_match_scipy():
    s = one_column_schema("categorical", labels=["a", "b", "c"])
    logits = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.5]])
    lp, _ = log_prob(s, torch.tensor(logits), np.array([2.0, 0.0]))
    want = logits[[0, 1], [2, 0]] - np.log(np.exp(logits).sum(1))
    np.testing.assert_allclose(lp, want, rtol=1e-12)
    s = one_column_schema("boolean", labels=["no", "yes"])
    lp, _ = log_prob(s, torch.tensor([[0.3], [-2.0]]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(lp, stats.bernoulli.logpmf([1, 0], 1 / (1 + np.exp(-np.array([0.3, -2.0])))), rtol=1e-12)


def test_cumulative_logit_against_its_definition():
    theta = np.array([-1.5, 0.2, 0.25, 3.0])  # K = 5 levels, two thresholds close together
    eta = np.array([-2.0, 0.0, 0.22, 4.0])
    sig = lambda a: 1 / (1 + np.exp(-a))
    cdf = np.concatenate([np.zeros((4, 1)), sig(theta[None] - eta[:, None]), np.ones((4, 1))], 1)
    want = np.log(np.diff(cdf, axis=1))
    got = cumulative_logit(torch.tensor(theta), torch.tensor(eta)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)
    np.testing.assert_allclose(np.exp(got).sum(1), 1.0, rtol=1e-12)


def test_ordinal_thresholds_stay_ordered():
    s = one_column_schema("ordinal", labels=["1", "2", "3", "4"])
    obs = TableObservation(s)
    with torch.no_grad():
        obs.ordinal["0"].copy_(torch.tensor([0.5, -3.0, 4.0]))
    theta = obs.thresholds(0)
    assert bool((theta[1:] > theta[:-1]).all())


def test_changing_units_shifts_log_p_by_the_jacobian():
    """The same column in grams and in kilograms: log p differs by log(1000) per observed cell."""
    for kind in ("continuous", "positive"):
        g = Schema([Column("x", kind, 0.0, loc=1.0, scale=2.0)])
        kg_loc = 1.0 - math.log(1000) if kind == "positive" else 1.0 / 1000
        kg = Schema([Column("x", kind, 0.0, loc=kg_loc, scale=2.0 if kind == "positive" else 2.0 / 1000)])
        x = np.array([5.0, 40.0])
        p = torch.tensor([[0.2, -0.1], [-0.4, 0.3]])
        lp_g, _ = log_prob(g, p, x)
        lp_kg, _ = log_prob(kg, p, x / 1000)
        np.testing.assert_allclose(lp_kg - lp_g, math.log(1000), rtol=1e-9)


def test_missing_cells_add_nothing_and_rows_sum_their_cells():
    s = Schema(
        [
            Column("a", "continuous", 0.0, loc=0.0, scale=1.0),
            Column("b", "categorical", 0.0, labels=["u", "v"]),
            Column("c", "count", 0.0, loc=0.5),
        ]
    )
    obs = TableObservation(s)
    p = torch.randn(3, obs.n_params, generator=torch.Generator().manual_seed(0))
    x = torch.tensor([[0.5, 1.0, 2.0], [math.nan, 0.0, 4.0], [math.nan, math.nan, math.nan]])
    d = obs(p)
    cells = d.cell_log_prob(x)
    assert cells[1, 0] == 0 and bool((cells[2] == 0).all())
    full = d.cell_log_prob(torch.tensor([[0.5, 1.0, 2.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(cells[1, 1:], full[1, 1:])
    torch.testing.assert_close(d.log_prob(x), cells.sum(-1))


def test_labels_and_components_are_sampled_not_argmaxed():
    s = Schema([Column("k", "categorical", 0.0, labels=["a", "b"]), Column("v", "continuous", 0.0, loc=0.0, scale=1.0)])
    obs = TableObservation(s, components=2)
    # P(b) = 0.3; the mixture: weight 0.3 at +5, 0.7 at -5, narrow
    p = torch.tensor([[math.log(0.7), math.log(0.3), math.log(0.7), math.log(0.3), -5.0, 5.0, -3.0, -3.0]])
    torch.manual_seed(0)
    rows = obs(p.expand(20000, -1)).sample()
    assert rows[:, 0].mean().item() == pytest.approx(0.3, abs=0.015)
    assert (rows[:, 1] > 0).double().mean().item() == pytest.approx(0.3, abs=0.015)


def test_a_wide_log_normal_has_a_finite_mean():
    """exp(mu + s^2 / 2) overflows float32 for a wide component; a zero weight times inf was NaN."""
    s = one_column_schema("positive", loc=3.0, scale=2.0)
    obs = TableObservation(s, components=2)
    p = torch.tensor([[0.0, -200.0, 0.0, 1.0, 0.0, 3.0]], dtype=torch.float32)  # 2nd component: weight 0, wide
    mean = obs(p).expected(0)
    assert torch.isfinite(mean).all()
