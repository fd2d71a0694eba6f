import math

import torch

from vaekit.models.autoencoder import ModelOutput
from vaekit.models.likelihoods import diagonal_normal, make_likelihood
from vaekit.objectives.elbo import binary_cross_entropy, elbo_terms, kl_per_dimension, kl_standard_normal, squared_error


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


def test_monte_carlo_kl_to_a_mixture_prior_agrees_with_closed_form():
    """A one-component mixture at N(0, I) is the standard prior: the Monte-Carlo KL must average to
    the closed form (and be unbiased for any q)."""
    from vaekit.models.priors import MixturePrior
    from vaekit.objectives.elbo import kl_monte_carlo

    prior_mod = MixturePrior(3, 1)
    with torch.no_grad():
        prior_mod.means.zero_()
    m, s = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.3, -0.7, 1.2]])
    q = diagonal_normal(m, s)
    torch.manual_seed(0)
    z = q.sample((200_000,))  # (K, 1, D)
    with torch.no_grad():
        mc = kl_monte_carlo(q, prior_mod(), z)
    assert abs(float(mc) - float(kl_standard_normal(q))) < 0.02


def test_free_bits_hold_small_kl_dimensions_at_the_floor_without_gradient():
    from vaekit.objectives.elbo import free_bits_kl

    kl_d = torch.tensor([[0.1, 2.0], [0.3, 4.0]], requires_grad=True)  # batch means: 0.2 and 3.0
    term = free_bits_kl(kl_d, 0.5)
    assert torch.allclose(term, torch.tensor([0.5 + 2.0, 0.5 + 4.0]))  # mean = sum_d max(0.5, mean KL_d)
    term.mean().backward()
    assert torch.equal(kl_d.grad[:, 0], torch.zeros(2)) and torch.allclose(kl_d.grad[:, 1], torch.full((2,), 0.5))
    assert torch.equal(free_bits_kl(kl_d, 0.0), kl_d.sum(1))


def test_elbo_with_k_samples_averages_and_iwae_with_one_sample_is_the_elbo():
    from vaekit.config import ModelConfig
    from vaekit.models import build_model
    from vaekit.objectives.elbo import iwae_terms

    torch.manual_seed(0)
    vae = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8], likelihood="gaussian"), (5,))
    x = torch.randn(6, 5)
    torch.manual_seed(1)
    out = vae(x)
    e, i = elbo_terms(out, x), iwae_terms(out, x)
    log_w = out.px.log_prob(x) + torch.distributions.Normal(0.0, 1.0).log_prob(out.z).sum(-1) - out.qz.log_prob(out.z)
    assert torch.allclose(i["iwae"], log_w, atol=1e-5)  # K = 1: the single-sample log weight
    assert torch.allclose(i["iwae"], i["elbo"]) and e["elbo"].shape == (6,)
    out_k = vae(x, n_samples=4)
    assert out_k.z.shape == (4, 6, 2) and out_k.px.batch_shape == (4, 6)
    assert torch.allclose(elbo_terms(out_k, x)["nll"], -out_k.px.log_prob(x).mean(0))
    # beta tempers what is trained, not the bound that is reported
    assert torch.allclose(iwae_terms(out_k, x, beta=0.3)["iwae"], iwae_terms(out_k, x)["iwae"])
    assert not torch.allclose(iwae_terms(out_k, x, beta=0.3)["loss"], iwae_terms(out_k, x)["loss"])
