"""Flow posteriors (IAF, spline IAF): the log-determinant is in every log q, the density is
normalised, and the importance-sampled log p(x) still converges to the exact likelihood."""

import math

import pytest
import torch

from conftest import low_rank
from test_importance_sampling import ppca_vae
from vaekit.config import ModelConfig, RunConfig, build_section
from vaekit.errors import VaekitError
from vaekit.metrics.evaluation import evaluate, importance_log_px
from vaekit.models import build_model
from vaekit.objectives.elbo import elbo_terms, iwae_terms

FLOWS = ["iaf", "nsf"]


def _perturb_flow(vae, scale=0.3, seed=0):
    """Random weights in the flow's last layers (zuko starts some of them near the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in vae.posterior_module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return vae


def flow_ppca_vae(x, q, posterior, perturb=0.0, perturb_flow=True):
    """The PPCA VAE of test_importance_sampling with a flow after its Gaussian: the encoder's
    mean and log-variance are the exact posterior's. A flow of zero weights is the identity (so q
    is exact); small random weights bend it."""
    diag, pca = ppca_vae(x, q, perturb)
    cfg = ModelConfig(
        name="vae",
        latent_dim=q,
        hidden=[],
        likelihood="gaussian",
        sigma=diag.sigma,
        posterior=posterior,
        flow_hidden=[16],
    )
    vae = build_model(cfg, (x.shape[1],)).double()
    with torch.no_grad():
        enc = vae.encoder.net[0]
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[: 2 * q].copy_(diag.encoder.net[0].weight)
        enc.bias[: 2 * q].copy_(diag.encoder.net[0].bias)
        enc.weight[2 * q :].normal_(0, 0.3, generator=torch.Generator().manual_seed(1))  # the context h(x)
        vae.decoder.load_state_dict(diag.decoder.state_dict())
        for p in vae.posterior_module.parameters():  # all zero: the flow is the identity and q exact
            p.zero_()
    return _perturb_flow(vae, {"iaf": 0.1, "nsf": 0.05}[posterior] if perturb_flow else 0.0).eval(), pca


@pytest.mark.parametrize("posterior", FLOWS)
def test_log_q_is_the_base_density_minus_the_log_determinant(posterior):
    """Change of variables checked independently of zuko: z = f(z_0), log q(z) = log N(z_0) - log|det df/dz_0|
    with the Jacobian from autograd."""
    torch.manual_seed(0)
    vae = _perturb_flow(
        build_model(
            ModelConfig(name="vae", latent_dim=3, hidden=[8], posterior=posterior, flow_hidden=[8]), (5,)
        ).double()
    )
    x = torch.rand(4, 5, dtype=torch.float64)
    q = vae.encode(x)
    base = q.flow.base
    z0 = base.sample()  # (B, D)
    f = q.flow.transform.inv  # z_0 -> z
    z = f(z0)
    for b in range(len(x)):

        def f_b(v, b=b):  # one example's map, (D,) -> (D,): its context stays its own
            full = z0.clone()
            full[b] = v
            return f(full)[b]

        jac = torch.autograd.functional.jacobian(f_b, z0[b])
        expected = base.log_prob(z0)[b] - torch.linalg.slogdet(jac)[1]
        assert torch.allclose(q.log_prob(z)[b], expected, atol=1e-8)
    assert torch.allclose(q.log_prob(z0), q.log_prob(z0))  # scoring is deterministic
    assert not torch.allclose(z, z0)  # the flow is not the identity


@pytest.mark.parametrize("posterior", FLOWS)
def test_the_flow_density_integrates_to_one(posterior):
    """D = 2: sum exp(log q) over a fine grid is 1, so no constant or log-determinant is missing."""
    vae = _perturb_flow(
        build_model(
            ModelConfig(name="vae", latent_dim=2, hidden=[8], posterior=posterior, flow_hidden=[8]), (3,)
        ).double(),
        0.2,
    )
    q = vae.encode(torch.rand(1, 3, dtype=torch.float64))
    side = torch.linspace(-9, 9, 361, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(side, side, indexing="ij"), -1).reshape(-1, 1, 2)  # (G, 1, D)
    with torch.no_grad():
        mass = torch.exp(q.log_prob(grid)).sum() * (side[1] - side[0]) ** 2
    assert abs(float(mass) - 1) < 2e-3


@pytest.mark.parametrize("posterior", FLOWS)
def test_importance_sampling_with_a_flow_converges_to_the_exact_likelihood(posterior):
    """On the linear-Gaussian (PPCA) model a flow-bent posterior gives a looser ELBO, but IS >= ELBO, the
    bound rises with K, and K = 2000 reaches the exact log p(x): a dropped log-determinant would bias it."""
    x = low_rank(n=100, f=6, rank=2, noise=0.3).double()
    vae, pca = flow_ppca_vae(x, 2, posterior)
    exact = pca.score(x)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = float(elbo_terms(vae(x.repeat(50, 1)), x.repeat(50, 1))["elbo"].mean())
        iwae5 = float(iwae_terms(vae(x.repeat(20, 1), n_samples=5), x.repeat(20, 1))["iwae"].mean())
    is_k = {k: float(importance_log_px(vae, x.repeat(reps, 1), k=k).mean()) for k, reps in ((10, 20), (2000, 1))}
    assert elbo < exact - 0.1  # the flow moved q away from the exact posterior
    assert elbo < iwae5 < is_k[10] < is_k[2000] <= exact + 0.005
    assert abs(is_k[2000] - exact) < 0.01
    # a flow of zero weights is the identity: q is the exact posterior, and every weight is exact
    vae, _ = flow_ppca_vae(x, 2, posterior, perturb_flow=False)
    assert torch.allclose(importance_log_px(vae, x, k=3), pca.score_samples(x), atol=1e-6)


@pytest.mark.parametrize("posterior", FLOWS)
def test_evaluate_a_flow_vae(posterior):
    x = low_rank(n=60, f=6, rank=2, noise=0.3).double()
    vae, pca = flow_ppca_vae(x, 2, posterior)
    res = evaluate(vae, x, k=200)
    assert abs(res["log_px"]["value"] - pca.score(x)) < 0.05
    assert res["kl"]["value"] > 0 and res["active_units"]["value"] == 2
    assert "kl_per_dim" not in res and "mutual_information" not in res  # per-dimension figures need a diagonal q


def test_flow_configs_are_checked():
    with pytest.raises(VaekitError, match="'model.posterior': got 'maf'"):
        build_section("model", {"posterior": "maf"})
    with pytest.raises(VaekitError, match="'train.free_bits': needs model.posterior = 'diagonal'"):
        RunConfig(model=build_section("model", {"posterior": "nsf"}), train=build_section("train", {"free_bits": 0.5}))
    with pytest.raises(VaekitError, match="'model.flow_steps': got 0"):
        build_section("model", {"flow_steps": 0})
    with pytest.raises(VaekitError, match="'model.flow_hidden'"):
        build_section("model", {"flow_hidden": []})


def test_a_diagonal_posterior_is_what_it_was():
    """The posterior registry left the diagonal VAE unchanged: same parameters, same draws."""
    torch.manual_seed(0)
    vae = build_model(ModelConfig(name="vae", latent_dim=3, hidden=[8]), (5,))
    assert list(dict(vae.posterior_module.named_parameters())) == []
    x = torch.rand(4, 5)
    q = vae.encode(x)
    m, lv = vae.encoder(x).chunk(2, -1)
    assert torch.equal(q.base_dist.loc, m) and torch.equal(q.base_dist.scale, torch.exp(0.5 * lv))
    assert torch.equal(vae.encoder_log_variance(x), lv)
    torch.manual_seed(1)
    z = vae(x).z
    torch.manual_seed(1)
    assert torch.equal(z, m + torch.exp(0.5 * lv) * torch.randn(4, 3))  # z = m + exp(s / 2) e, as before


@pytest.mark.parametrize("posterior", FLOWS)
def test_a_vamp_prior_over_a_flow_mixes_the_base_gaussians_of_the_pseudo_inputs(posterior):
    """p(z) = 1/K sum_k N(z; m(u_k), diag(exp(s(u_k)))): the Gaussians the flow bends at the pseudo-inputs,
    a normalised mixture (checked against the densities written out); the ELBO's KL is log q - log p at
    the drawn code, and importance sampling bounds log p(x) above the ELBO."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        name="vae", latent_dim=2, hidden=[8], prior="vamp", prior_components=3, posterior=posterior, flow_hidden=[8]
    )
    m = _perturb_flow(build_model(cfg, (5,)).double()).eval()
    u = m.prior_module.pseudo_inputs
    mean, logvar = m._encode(u, None)[:, :4].detach().chunk(2, dim=-1)  # (3, 2) each: the base Gaussians' parameters
    z = torch.randn(6, 2, dtype=torch.float64)
    comp = -0.5 * (((z[:, None] - mean) ** 2 / logvar.exp() + logvar).sum(-1) + 2 * math.log(2 * math.pi))  # (6, 3)
    assert torch.allclose(m.prior().log_prob(z), torch.logsumexp(comp, 1) - math.log(3), atol=1e-10)
    x = torch.rand(7, 5, dtype=torch.float64)
    torch.manual_seed(1)
    out = m(x)
    assert torch.allclose(elbo_terms(out, x)["kl"], out.log_qz - m.prior().log_prob(out.z), atol=1e-10)
    draws = m.prior_module.draw(4000, m.encode, torch.Generator().manual_seed(0), mean)
    assert abs(float(draws.mean(0).sub(mean.mean(0)).abs().max())) < 0.15  # the mixture's mean
    res = evaluate(m, x, k=300)
    assert res["log_px"]["value"] >= res["elbo"]["value"]
