import math

import torch

from vaekit.likelihoods import diagonal_normal, make_likelihood
from vaekit.objectives import binary_cross_entropy, elbo_terms, kl_per_dimension, kl_standard_normal, squared_error
from vaekit.models.autoencoder import ModelOutput


def test_kl_closed_form_is_the_tutorial_formula():
    g = torch.Generator().manual_seed(0)
    m, s = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)  # s: log-variance
    formula = 0.5 * (torch.exp(s) - (1 + s) + m**2).sum(1)
    assert torch.allclose(kl_standard_normal(diagonal_normal(m, s)), formula, atol=1e-6)
    assert kl_per_dimension(diagonal_normal(m, s)).shape == (5, 3)


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    m, s = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.3, -0.7, 1.2]])
    q = diagonal_normal(m, s)
    z = q.sample((400_000,))  # (S, 1, D)
    prior = diagonal_normal(torch.zeros(3), torch.zeros(3))
    mc = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    assert torch.allclose(mc, kl_standard_normal(q), atol=0.02)


def test_kl_zero_at_prior():
    q = diagonal_normal(torch.zeros(2, 4), torch.zeros(2, 4))
    assert torch.allclose(kl_standard_normal(q), torch.zeros(2))


def test_gaussian_likelihood_keeps_its_constants():
    x = torch.tensor([[0.2, 0.9, 0.4]])
    mu = torch.tensor([[0.0, 1.0, 0.5]])
    sigma = 0.7
    ref = -0.5 * (((x - mu) / sigma) ** 2).sum() - 3 * math.log(sigma) - 1.5 * math.log(2 * math.pi)
    assert torch.allclose(make_likelihood("gaussian", mu, 1, sigma).log_prob(x), ref.reshape(1), atol=1e-6)


def test_bernoulli_likelihood_is_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits, x = torch.randn(4, 1, 3, 3, generator=g), torch.rand(4, 1, 3, 3, generator=g)
    lp = make_likelihood("bernoulli", logits, 3).log_prob(x)
    assert lp.shape == (4,)
    assert torch.allclose(-lp, binary_cross_entropy(torch.sigmoid(logits), x), atol=1e-4)


def test_bernoulli_sums_to_one_over_binary_images():
    logits = torch.tensor([[0.3, -1.2, 2.0]])
    px = make_likelihood("bernoulli", logits, 1)
    grid = torch.tensor([[a, b, c] for a in (0.0, 1.0) for b in (0.0, 1.0) for c in (0.0, 1.0)])
    assert math.isclose(float(px.log_prob(grid).exp().sum()), 1.0, rel_tol=1e-6)


def test_elbo_terms_and_beta():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 4, generator=g)
    q = diagonal_normal(torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g))
    out = ModelOutput(px=make_likelihood("bernoulli", torch.randn(6, 4, generator=g), 1), z=torch.zeros(6, 2), qz=q)
    t1, t4 = elbo_terms(out, x, beta=1.0), elbo_terms(out, x, beta=4.0)
    assert t1["loss"].shape == (6,)
    assert torch.allclose(t1["elbo"], -t1["loss"])
    assert torch.allclose(t4["loss"], t1["nll"] + 4 * t1["kl"])
    ae = elbo_terms(ModelOutput(px=out.px, z=out.z), x)
    assert set(ae) == {"loss", "nll"} and torch.allclose(ae["loss"], t1["nll"])


def test_squared_error_per_example():
    a, b = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    assert torch.equal(squared_error(a, b), torch.tensor([4.0, 4.0]))
