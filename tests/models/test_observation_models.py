"""Every likelihood is normalised over its support, keeps its constants, and refuses data it does not fit."""

import itertools
import math

import pytest
import torch

from vaekit.models.likelihoods import LIKELIHOODS, ContinuousBernoulli, DiscretizedLogistic, Observation, fit_problem

LEVELS = torch.arange(256, dtype=torch.float64) / 255  # the support of the discretised logistics


def test_bernoulli_sums_to_one_over_all_binary_images():
    obs = Observation("bernoulli", (3,))
    px = obs(torch.tensor([[-2.0, 0.3, 5.0]], dtype=torch.float64))
    support = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)  # (8, 3)
    assert math.isclose(float(px.log_prob(support).exp().sum()), 1.0, abs_tol=1e-12)


@pytest.mark.parametrize("logit", [-60.0, -20.0, -3.0, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 0.5, 4.0, 20.0, 60.0])
def test_continuous_bernoulli_integrates_to_one(logit):
    grid = torch.linspace(0, 1, 400001, dtype=torch.float64)
    if abs(logit) > 10:  # the mass piles up at one end: integrate on a grid that resolves it
        grid = torch.cat(
            [
                torch.linspace(0, 1e-2, 200001, dtype=torch.float64),
                torch.linspace(1e-2, 1 - 1e-2, 200001, dtype=torch.float64)[1:],
                torch.linspace(1 - 1e-2, 1, 200001, dtype=torch.float64)[1:],
            ]
        )
    p = ContinuousBernoulli(torch.full_like(grid, logit)).log_prob(grid).exp()
    assert math.isclose(float(torch.trapezoid(p, grid)), 1.0, abs_tol=1e-6)


def test_continuous_bernoulli_matches_torch_where_torch_is_accurate():
    logits = torch.linspace(-8, 8, 41, dtype=torch.float64)
    x = torch.rand(41, dtype=torch.float64)
    ref = torch.distributions.ContinuousBernoulli(logits=logits, lims=(0.4999, 0.5001))
    ours = ContinuousBernoulli(logits)
    assert torch.allclose(ours.log_prob(x), ref.log_prob(x), atol=1e-6)
    assert torch.allclose(ours.mean, ref.mean, atol=1e-6)


def test_continuous_bernoulli_mean_is_accurate_in_float32_near_one_half():
    """E[x] = 1/(1 - e^-l) - 1/l: the closed form's two terms (each ~1/l) cancel near l = 0, so
    float32 needs the series further out than |l| < 1e-3 (which erred by up to 1e-4)."""
    l = torch.cat([torch.linspace(-5, 5, 100001), torch.tensor([1e-3, 2.2e-3, 0.2499, 0.2501])])
    exact = 1 / (-torch.expm1(-l.double())) - 1 / l.double()
    exact = torch.where(l == 0, torch.full_like(exact, 0.5), exact)
    assert float((ContinuousBernoulli(l).mean.double() - exact).abs().max()) < 1e-6


def test_continuous_bernoulli_normaliser_is_stable_near_one_half():
    # lambda = 1/2 +- tiny is logit +- 4 tiny: log C must be log 2 + l^2 / 12, smooth, with a finite gradient.
    l = torch.tensor([-1e-2, -1e-3, -1e-7, 0.0, 1e-7, 1e-3, 1e-2, 1.1e-2], dtype=torch.float64, requires_grad=True)
    logc = ContinuousBernoulli(l).log_normalizer()
    exact = torch.log(
        torch.tensor([1.1e-2], dtype=torch.float64) / torch.tanh(torch.tensor([5.5e-3], dtype=torch.float64))
    )
    assert torch.allclose(logc[:-1], math.log(2) + l[:-1].detach() ** 2 / 12, atol=1e-9)
    assert torch.allclose(logc[-1:], exact, atol=1e-12)  # the exact branch just past the switch
    logc.sum().backward()
    assert torch.isfinite(l.grad).all() and torch.allclose(l.grad, l.detach() / 6, atol=1e-6)  # d/dl (l^2/12)
    # float32 at the switch: the two branches agree to float precision, so there is no jump.
    a = ContinuousBernoulli(torch.tensor([0.00999999, 0.01000001])).log_normalizer()
    assert abs(float(a[1] - a[0])) < 1e-6


def test_continuous_bernoulli_samples_have_its_mean():
    torch.manual_seed(0)
    for logit in (-30.0, -2.0, 0.0, 0.7, 12.0):
        d = ContinuousBernoulli(torch.full((200_000,), logit, dtype=torch.float64))
        s = d.sample()
        assert 0 <= float(s.min()) and float(s.max()) <= 1
        assert abs(float(s.mean()) - float(d.mean[0])) < 4 * float(s.std()) / math.sqrt(len(s)) + 1e-6


@pytest.mark.parametrize("name", ["gaussian", "gaussian_shared", "gaussian_pixel"])
def test_gaussians_integrate_to_one_with_their_scale(name):
    obs = Observation(name, (2,), sigma=0.3).double()
    if name != "gaussian":
        with torch.no_grad():
            obs.log_sigma.fill_(math.log(0.7))
    grid = torch.linspace(-8, 8, 200001, dtype=torch.float64)
    px = obs(torch.tensor([[0.5, -1.0]], dtype=torch.float64))
    # p(x1, x2) = p(x1) p(x2): integrate each marginal
    for i in range(2):
        pts = torch.zeros(len(grid), 2, dtype=torch.float64)
        pts[:, i] = grid
        marg = px.base_dist.log_prob(pts)[:, i].exp()
        assert math.isclose(float(torch.trapezoid(marg.detach(), grid)), 1.0, abs_tol=1e-8)
    sigma = 0.3 if name == "gaussian" else 0.7
    x = torch.tensor([[0.5, -1.0]], dtype=torch.float64)  # at the mean: log p = -2 * 0.5 log(2 pi sigma^2)
    assert math.isclose(float(px.log_prob(x).detach()), -math.log(2 * math.pi * sigma**2), rel_tol=1e-12)


@pytest.mark.parametrize(
    "loc,log_scale", [(0.5, -2.0), (0.0, -7.0), (1.0, -5.0), (-3.0, 0.0), (0.37, -6.5), (2.0, 1.0)]
)
def test_discretized_logistic_sums_to_one_over_256_levels(loc, log_scale):
    d = DiscretizedLogistic(
        torch.zeros(1, 256, dtype=torch.float64),
        torch.full((1, 256), loc, dtype=torch.float64),
        torch.full((1, 256), log_scale, dtype=torch.float64),
    )
    assert math.isclose(float(d.log_prob(LEVELS).exp().sum()), 1.0, abs_tol=1e-9)


def test_discretized_logistic_mixture_is_normalised_and_matches_its_cdf():
    torch.manual_seed(0)
    obs = Observation("discretized_logistic_mixture", (1, 1, 1), components=3).double()
    params = torch.randn(1, 9, 1, 1, dtype=torch.float64)  # (N, 3M * C, H, W)
    px = obs(params)
    levels = LEVELS.view(256, 1, 1, 1)
    probs = px.log_prob(levels).exp()
    assert math.isclose(float(probs.sum()), 1.0, abs_tol=1e-9)
    # an interior level: the mixture of logistic CDF differences, computed directly
    w, loc, ls = torch.softmax(params[0, :3, 0, 0], 0), params[0, 3:6, 0, 0], params[0, 6:, 0, 0]
    k = 100
    cdf = lambda t: torch.sigmoid((t - loc) / ls.clamp_min(-7).exp())
    direct = (
        w
        * (
            cdf(torch.tensor((k + 0.5) / 255, dtype=torch.float64))
            - cdf(torch.tensor((k - 0.5) / 255, dtype=torch.float64))
        )
    ).sum()
    assert math.isclose(float(probs[k]), float(direct), rel_tol=1e-9)
    assert math.isclose(float(px.mean), float((probs.flatten() * LEVELS).sum()), rel_tol=1e-9)


def test_discretized_logistic_samples_lie_on_the_levels():
    obs = Observation("discretized_logistic", (1, 4, 4))
    s = obs(torch.randn(64, 2, 4, 4)).sample()
    assert s.shape == (64, 1, 4, 4) and torch.allclose(s * 255, torch.round(s * 255), atol=1e-4)


def test_every_likelihood_has_a_name_and_a_decoder_shape():
    for name in LIKELIHOODS:
        obs = Observation(name, (3, 4, 5), components=2)
        params = torch.randn(2, *obs.param_shape())
        px = obs(params)
        x = torch.rand(2, 3, 4, 5) if name not in ("bernoulli",) else torch.bernoulli(torch.full((2, 3, 4, 5), 0.5))
        if name.startswith("discretized"):
            x = torch.round(x * 255) / 255
        assert px.log_prob(x).shape == (2,) and px.mean.shape == (2, 3, 4, 5)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'; allowed: bernoulli"):
        Observation("poisson", (3,))


def test_fit_problems_name_the_fix():
    grey = torch.rand(10, 4)
    eight_bit = torch.randint(0, 256, (10, 4)).float() / 255
    binary = torch.bernoulli(grey)
    msg, soft = fit_problem("bernoulli", grey, None, False)
    assert soft and "data.binarize = 'dynamic'" in msg and "likelihood_check = false" in msg
    assert fit_problem("bernoulli", binary, 2, False) is None
    msg, soft = fit_problem("continuous_bernoulli", grey * 3 - 1, None, False)
    assert not soft and "needs data in [0, 1]" in msg
    msg, soft = fit_problem("gaussian_shared", eight_bit, 256, False)
    assert soft and "data.dequantize = 'uniform'" in msg
    assert fit_problem("gaussian_shared", eight_bit, 256, True) is None
    assert fit_problem("discretized_logistic", eight_bit, 256, False) is None
    msg, soft = fit_problem("discretized_logistic", grey, None, False)
    assert not soft and "8-bit" in msg
    assert fit_problem("continuous_bernoulli", eight_bit, 256, False) is None


def test_continuous_bernoulli_series_matches_a_high_precision_value():
    """log C(l) = log(l / tanh(l/2)) near l = 0, where the code uses its Taylor series
    log 2 + l^2/12 - 7 l^4/1440: against 50-digit arithmetic, to 1e-15 (the old -l^4/360 was off by
    l^4/480, 1.4e-11 at l = 0.009)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 50

    def exact(l: float) -> float:
        d = Decimal(l)
        e = (d).exp()  # tanh(l/2) = (e^l - 1) / (e^l + 1)
        return float((d * (e + 1) / (e - 1)).ln())

    for l in (0.009, -0.009, 0.005, 1e-3, -2e-4, 0.00999):
        got = float(ContinuousBernoulli(torch.tensor(l, dtype=torch.float64)).log_normalizer())
        assert abs(got - exact(l)) < 1e-15, (l, got - exact(l))
    # and the two branches meet at the switch (|l| = 1e-2) to float64 rounding
    for l in (0.0099999, 0.0100001):
        assert abs(float(ContinuousBernoulli(torch.tensor(l, dtype=torch.float64)).log_normalizer()) - exact(l)) < 1e-14
