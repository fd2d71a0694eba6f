"""The hierarchical VAE: on a linear-Gaussian two-layer model, every density it reports is checked
against closed-form Gaussian algebra (prior constants included) and the importance-sampled log p(x)
against the exact marginal likelihood; the per-layer KLs add up to the KL the ELBO uses."""

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from conftest import low_rank
from vaekit.config import DataConfig, ModelConfig, TrainConfig, build_section
from vaekit.errors import VaekitError
from vaekit.metrics.evaluation import evaluate, importance_log_px
from vaekit.models import build_model
from vaekit.objectives.elbo import elbo_terms, iwae_terms

F, DIMS, SIGMA = 5, [2, 2], 0.7


def linear_hvae(seed: int = 0):
    """A two-layer hvae made linear-Gaussian: identity activations, prior variances that do not depend
    on the layers above, a fixed-sigma Gaussian p(x|z). Random weights everywhere else."""
    torch.manual_seed(seed)
    m = build_model(
        ModelConfig(name="hvae", latent_dims=DIMS, hidden=[6], likelihood="gaussian", sigma=SIGMA), (F,)
    ).double()
    for _, mod in list(m.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(mod, child_name, nn.Identity())
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.4)
        for head, d in zip(m.prior_heads, DIMS):
            head.weight[d:].zero_()  # log-variance rows: constant in s
        for head in m.post_heads:
            head.weight.mul_(0.5)
    return m.eval()


def gaussian_of(model):
    """The exact p(z) = N(mu, S) read off the model's own log p(z) (a quadratic: S^-1 its negative
    Hessian, mu from its gradient at 0), and the exact p(x) = N(M mu + c, M S M^T + sigma^2 I) with
    the decoder's affine mean M z + c."""
    d = sum(DIMS)
    zero = torch.zeros(d, dtype=torch.float64)
    logp = lambda z: model.prior().log_prob(z)
    prec = -torch.autograd.functional.hessian(logp, zero)
    mu = torch.linalg.solve(prec, torch.autograd.functional.jacobian(logp, zero))
    cov = torch.linalg.inv(prec)
    mean_x = lambda z: model.decode(z[None]).mean[0]
    M = torch.autograd.functional.jacobian(mean_x, zero)  # (F, D)
    c = mean_x(zero)
    pz = MultivariateNormal(mu, (cov + cov.T) / 2)
    px = MultivariateNormal(M @ mu + c, M @ cov @ M.T + SIGMA**2 * torch.eye(F, dtype=torch.float64))
    return pz, px


def test_the_prior_is_the_gaussian_it_should_be_constants_included():
    m = linear_hvae()
    pz, _ = gaussian_of(m)
    z = torch.randn(50, sum(DIMS), dtype=torch.float64)
    assert torch.allclose(m.prior().log_prob(z), pz.log_prob(z), atol=1e-9)  # not just up to a constant
    draws = m.prior().sample((40000,))  # and what it samples is that Gaussian
    assert torch.allclose(draws.mean(0), pz.mean, atol=0.05)
    assert torch.allclose(draws.T.cov(), pz.covariance_matrix, atol=0.08)


@pytest.fixture(scope="module")
def inferred():
    """The linear model with its inference side (encoder, bottom-up cells, posterior heads) fitted
    by the ELBO to 1,000 draws of its own p(x), so that q is close to the true posterior; the
    generative side is untouched, so p(x) stays exact."""
    m = linear_hvae()
    _, px = gaussian_of(m)
    with torch.no_grad():
        xt = px.sample((1000,))
    opt = torch.optim.Adam(
        [p for n, p in m.named_parameters() if n.startswith(("post_heads", "encoder", "up"))], lr=1e-2
    )
    m.train()
    for _ in range(300):
        loss = -elbo_terms(m(xt), xt)["elbo"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, px_after = gaussian_of(m.eval())
    assert torch.allclose(px_after.loc, px.loc) and torch.allclose(px_after.covariance_matrix, px.covariance_matrix)
    return m, px


def test_importance_sampling_reaches_the_exact_likelihood_of_a_two_layer_model(inferred):
    m, px = inferred
    with torch.no_grad():
        x = px.sample((40,))
        exact = px.log_prob(x)  # (B,)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = elbo_terms(m(x.repeat(500, 1)), x.repeat(500, 1))["elbo"].view(500, -1).mean(0)
    est = {
        k: importance_log_px(m, x.repeat(reps, 1), k=k).view(reps, -1).mean(0)
        for k, reps in ((1, 500), (10, 20), (3000, 1))
    }
    assert float((exact - elbo).mean()) > 0.05  # q is not the exact posterior
    assert abs(float((est[1] - elbo).mean())) < 0.05  # K = 1 is the ELBO (in expectation: 20,000 draws each)
    assert float(elbo.mean()) < float(est[10].mean()) < float(est[3000].mean()) <= float(exact.mean()) + 0.005
    assert abs(float((est[3000] - exact).mean())) < 0.01 and float((est[3000] - exact).abs().max()) < 0.1


def test_the_layers_kls_are_the_kl():
    """sum_l KL(q(z_l|x, z_>l) || p(z_l|z_>l)) at the drawn codes is an unbiased estimate of
    KL(q(z|x) || p(z)) = E_q[log q(z|x) - log p(z)]: both averaged over many draws agree."""
    m = linear_hvae()
    x = torch.randn(6, F, dtype=torch.float64)
    torch.manual_seed(1)
    with torch.no_grad():
        out = m(x, n_samples=20000)
    parts = torch.stack([out.kl_parts[n] for n in m.kl_parts])  # (L, K, B)
    assert parts.shape == (2, 20000, 6) and bool((parts >= 0).all())
    assert torch.allclose(parts.sum(0).mean(0), (out.log_qz - out.log_pz).mean(0), atol=0.03)
    assert torch.allclose(out.log_qz, out.qz.log_prob(out.z), atol=1e-9)  # drawn and scored agree
    assert torch.allclose(out.log_pz, m.prior().log_prob(out.z), atol=1e-9)
    terms = elbo_terms(out, x)
    assert torch.allclose(terms["kl"], terms["kl_z1"] + terms["kl_z2"])
    iw = iwae_terms(out, x)["iwae"]  # K = 20000: the tightest bound
    assert bool((iw > terms["elbo"]).all())


def test_evaluate_reports_each_layer(inferred):
    m, px = inferred
    with torch.no_grad():
        x = px.sample((30,))
    res = evaluate(m, x, k=500)
    assert abs(res["kl_z1"]["value"] + res["kl_z2"]["value"] - res["kl"]["value"]) < 1e-9
    assert res["kl_z1"]["unit"] == "nats" and "mutual_information" not in res and "kl_per_dim" not in res
    assert abs(res["log_px"]["value"] - float(px.log_prob(x).detach().mean())) < 0.05


def test_the_hierarchy_learns_to_use_its_layers():
    """Trained on data with two latent factors and a Gaussian likelihood, the KL is no longer zero
    and the importance-sampled log p(x) beats the model's start by many nats."""
    from vaekit.data.prepared import prepare
    from vaekit.training.loop import fit

    x = low_rank(n=1000, f=6, rank=2, noise=0.1)
    data = prepare(DataConfig(name="low-rank", val_size=0, scaling="none"), raw=(x.numpy(), None, x.numpy(), None))
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="hvae", latent_dims=[2, 2], hidden=[32], likelihood="gaussian_shared"), (6,))
    before = evaluate(m, x[:200], k=50)["log_px"]["value"]
    fit(m, data, TrainConfig(epochs=30, batch_size=100, lr=3e-3, progress=False))
    res = evaluate(m, x[:200], k=50)
    assert res["kl"]["value"] > 2 and res["log_px"]["value"] > before + 5
    assert res["log_px"]["value"] >= res["elbo"]["value"]


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"name": "hvae", "prior": "mog"}, "'model.prior': the hierarchical VAE has its own"),
        ({"name": "hvae", "posterior": "iaf"}, "'model.posterior': the hierarchical VAE has its own"),
        ({"name": "hvae", "conditional": True, "num_classes": 3}, "'model.conditional'"),
    ],
)
def test_bad_hierarchies_name_the_key(raw, message):
    with pytest.raises(VaekitError, match=message):
        build_model(build_section("model", raw), (6,))


def test_latent_dims_are_checked():
    with pytest.raises(VaekitError, match="'model.latent_dims': got \\[\\]"):
        build_section("model", {"name": "hvae", "latent_dims": []})
    with pytest.raises(VaekitError, match="'model.latent_dims'"):
        build_section("model", {"name": "hvae", "latent_dims": [4, 0]})
    m = build_model(build_section("model", {"name": "hvae", "latent_dims": [5, 3, 2], "hidden": [16]}), (6,))
    assert m.latent_dim == 10 and m.kl_parts == ("kl_z1", "kl_z2", "kl_z3")
