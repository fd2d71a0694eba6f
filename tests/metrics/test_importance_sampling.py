"""ELBO <= importance-sampled log p(x) -> exact log p(x), on a linear-Gaussian model (probabilistic PCA)."""

import math

import torch

from conftest import low_rank
from vaekit.config import ModelConfig
from vaekit.metrics.evaluation import evaluate, importance_log_px
from vaekit.models import PCA, build_model
from vaekit.objectives.elbo import elbo_terms


def ppca_vae(x: torch.Tensor, q: int, perturb: float = 0.0):
    """A VAE with linear encoder/decoder set to the PPCA maximum-likelihood solution.

    Decoder: p(x|z) = N(W z + mu, s2 I) with W = U_q (L_q - s2 I)^(1/2). The exact posterior is
    N(M^-1 W^T (x - mu), s2 M^-1), M = W^T W + s2 I (diagonal here), which a linear encoder expresses.
    `perturb` moves the encoder away from it.
    """
    pca = PCA(q).fit(x.double())
    f = x.shape[1]
    lam, s2 = pca.eigenvalues_[:q], pca.noise_variance_
    W = pca.components_.T * (lam - s2).sqrt()  # (F, q)
    M = W.T @ W + s2 * torch.eye(q, dtype=torch.float64)
    A = torch.linalg.solve(M, W.T)  # (q, F): posterior mean = A (x - mu)
    logvar = torch.log(s2 * torch.diagonal(torch.linalg.inv(M)))
    cfg = ModelConfig(name="vae", latent_dim=q, hidden=[], likelihood="gaussian", sigma=float(s2.sqrt()))
    vae = build_model(cfg, (f,)).double()
    enc, dec = vae.encoder.net[0], vae.decoder.net[0]
    with torch.no_grad():
        enc.weight.copy_(torch.cat([A, torch.zeros(q, f, dtype=torch.float64)]))
        enc.bias.copy_(torch.cat([-A @ pca.mean_ + perturb, logvar + perturb]))
        dec.weight.copy_(W)
        dec.bias.copy_(pca.mean_)
    return vae.eval(), pca


def mean_elbo(vae, x, reps=200):
    """E_q[ELBO] per example, averaged over `reps` draws for each example."""
    with torch.no_grad():
        return elbo_terms(vae(x.repeat(reps, 1)), x.repeat(reps, 1))["elbo"].view(reps, len(x)).mean(0)


def test_exact_posterior_makes_every_importance_weight_exact():
    x = low_rank(n=300, f=8, rank=2, noise=0.3).double()
    vae, pca = ppca_vae(x, 2)
    exact = pca.score_samples(x)
    torch.manual_seed(0)
    # log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z when q is the true posterior.
    assert torch.allclose(importance_log_px(vae, x, k=64, chunk_rows=50), exact, atol=1e-6)
    assert torch.allclose(importance_log_px(vae, x, k=1), exact, atol=1e-6)
    # The ELBO with the analytic KL is exact in expectation.
    assert torch.allclose(mean_elbo(vae, x).mean(), exact.mean(), atol=0.02)


def test_the_decoding_chunk_changes_only_the_speed():
    """Same draws, decoded 1, 7 or all 200 codes at a time: equal to float64 rounding."""
    x = low_rank(n=60, f=8, rank=2, noise=0.3).double()
    vae, _ = ppca_vae(x, 2, perturb=0.2)
    runs = []
    for rows in (60, 420, 12000):
        torch.manual_seed(3)
        runs.append(importance_log_px(vae, x, k=200, decode_rows=rows))
    for r in runs[1:]:
        assert torch.allclose(r, runs[0], rtol=0, atol=1e-12)


def test_elbo_below_importance_sampling_near_exact():
    x = low_rank(n=300, f=8, rank=2, noise=0.3).double()
    vae, pca = ppca_vae(x, 2, perturb=0.2)
    exact = pca.score(x)
    torch.manual_seed(0)
    elbo = float(mean_elbo(vae, x).mean())
    is_k = {
        k: float(importance_log_px(vae, x.repeat(reps, 1), k=k).mean())
        for k, reps in ((1, 200), (10, 20), (100, 4), (2000, 1))
    }
    assert elbo < exact - 0.1  # the perturbed encoder makes a loose bound
    assert abs(is_k[1] - elbo) < 0.05  # K = 1 is the ELBO (its single-sample form)
    assert elbo < is_k[10] < is_k[100] < is_k[2000] <= exact + 0.01  # the IWAE bound rises with K ...
    assert abs(is_k[2000] - exact) < 0.03  # ... towards the exact log-likelihood


def test_evaluate_reports_units_and_matches_exact():
    x = low_rank(n=200, f=8, rank=2, noise=0.3).double()
    vae, pca = ppca_vae(x, 2)
    res = evaluate(vae, x, k=50)
    assert math.isclose(res["log_px"]["value"], pca.score(x), abs_tol=1e-5)
    assert abs(res["elbo"]["value"] - pca.score(x)) < 0.2  # one draw per example
    assert res["log_px"]["unit"] == "nats" and "K=50" in res["log_px"]["reduction"]
    # A density on continuous data has no bits/dim; on dequantised 8-bit data it counts the 256 levels.
    assert "bits_per_dim" not in res
    deq = evaluate(vae, x, k=50, dequantized=True)
    assert math.isclose(
        deq["bits_per_dim"]["value"], (-pca.score(x) + 8 * math.log(256)) / (8 * math.log(2)), rel_tol=1e-5
    )
    assert res["active_units"]["value"] == 2
    pres = evaluate(pca, x)
    assert math.isclose(pres["ppca_log_likelihood"]["value"], pca.score(x), rel_tol=1e-9)
    assert "likelihood_note" not in res and "bits_per_dim" not in pres


def test_bernoulli_on_grey_values_is_flagged():
    vae = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8], likelihood="bernoulli"), (6,))
    grey, binary = torch.rand(20, 6), torch.bernoulli(torch.full((20, 6), 0.5))
    assert "not normalised likelihoods" in evaluate(vae, grey, k=5)["likelihood_note"]["value"]
    assert "likelihood_note" not in evaluate(vae, binary, k=5)


def test_active_units_counts_dimensions_that_carry_information():
    x = low_rank(n=200, f=8, rank=2, noise=0.3).double()
    vae, _ = ppca_vae(x, 2)
    with torch.no_grad():
        vae.encoder.net[0].weight[1].zero_()  # the second mean no longer depends on x
    assert evaluate(vae, x, k=0)["active_units"]["value"] == 1


def test_linear_gaussian_vae_trained_reaches_the_ppca_maximum_likelihood():
    """Tipping & Bishop (1999): PPCA's ML solution is the best any linear-Gaussian model does. A VAE
    with a linear decoder and a learned shared sigma, trained with the ELBO, must reach it: its exact
    log-likelihood log N(x; b, W W^T + sigma^2 I) matches the PPCA optimum within 0.1 nats."""
    from vaekit.config import DataConfig, TrainConfig
    from vaekit.data.prepared import prepare
    from vaekit.training.loop import fit

    x = low_rank(n=1000, f=6, rank=2, noise=0.3)
    data = prepare(DataConfig(name="low-rank", val_size=0, scaling="none"), raw=(x.numpy(), None, x.numpy(), None))
    torch.manual_seed(0)
    vae = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[], likelihood="gaussian_shared"), (6,))
    fit(vae, data, TrainConfig(epochs=100, batch_size=100, lr=1e-2, schedule="cosine", progress=False))
    W, b = vae.decoder.net[0].weight.detach().double(), vae.decoder.net[0].bias.detach().double()
    s2 = torch.exp(2 * vae.observation.log_sigma.detach().double())
    model_ll = (
        torch.distributions.MultivariateNormal(b, W @ W.T + s2 * torch.eye(6, dtype=torch.float64))
        .log_prob(x.double())
        .mean()
    )
    ml = PCA(2).fit(x.double()).score(x.double())
    assert float(model_ll) <= ml + 1e-6  # nothing linear-Gaussian beats the ML solution
    assert abs(float(model_ll) - ml) < 0.1
    # and the importance-sampled estimate of the trained VAE agrees with its exact likelihood
    torch.manual_seed(1)
    assert abs(float(importance_log_px(vae.double(), x.double(), k=500).mean()) - float(model_ll)) < 0.05


def test_iwae_objective_rises_with_k_towards_the_exact_likelihood():
    from vaekit.objectives.elbo import iwae_terms

    x = low_rank(n=300, f=8, rank=2, noise=0.3).double()
    vae, pca = ppca_vae(x, 2, perturb=0.2)
    exact = pca.score(x)
    torch.manual_seed(0)
    with torch.no_grad():
        bound = {
            k: float(iwae_terms(vae(x.repeat(reps, 1), n_samples=k), x.repeat(reps, 1))["iwae"].mean())
            for k, reps in ((1, 100), (5, 40), (50, 8), (1000, 1))
        }
    assert bound[1] < bound[5] < bound[50] < bound[1000] <= exact + 0.01
    assert exact - bound[1] > 0.1 and exact - bound[1000] < 0.03
    # with the exact posterior every bound is exact, for every K
    vae_exact, _ = ppca_vae(x, 2)
    with torch.no_grad():
        assert torch.allclose(iwae_terms(vae_exact(x, n_samples=7), x)["iwae"], pca.score_samples(x), atol=1e-6)


def test_mutual_information_matches_the_gaussian_formula():
    """For the exact PPCA posterior (constant diagonal covariance S, means A(x - mu)), the aggregate
    posterior is Gaussian with covariance Cov(means) + S, so I(x; z) = 1/2 sum_d log((var_d + s_d) / s_d)."""
    from vaekit.metrics.evaluation import code_mutual_information

    x = low_rank(n=3000, f=8, rank=2, noise=0.3).double()
    vae, _ = ppca_vae(x, 2)
    with torch.no_grad():
        q = vae.encode(x)
    mean, var = q.base_dist.loc, q.base_dist.scale**2
    analytic = 0.5 * torch.log((mean.var(0) + var[0]) / var[0]).sum()
    mi = code_mutual_information(mean, var.log(), generator=torch.Generator().manual_seed(0))
    assert abs(mi - float(analytic)) < 0.1
    # a posterior that ignores x carries no information
    assert abs(code_mutual_information(torch.zeros_like(mean), var.log())) < 1e-9


def test_bits_per_dim_only_where_they_are_bits_of_the_data():
    """A Bernoulli on grey values scores a training objective: no bits/dim. On binary data they are
    -log2 P(x) / D."""
    vae = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8], likelihood="bernoulli"), (6,))
    grey, binary = torch.rand(20, 6), torch.bernoulli(torch.full((20, 6), 0.5))
    assert "bits_per_dim" not in evaluate(vae, grey, k=5)
    res = evaluate(vae, binary, k=5)
    assert math.isclose(res["bits_per_dim"]["value"], -res["log_px"]["value"] / (6 * math.log(2)), rel_tol=1e-9)
