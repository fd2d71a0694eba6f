"""The disentangling objectives (β-TC-VAE, InfoVAE/MMD, annealed capacity) and FactorVAE: each
estimator against the quantity it estimates, the gradients going where they should, and training
through the unchanged loop with exact resume."""

import math

import numpy as np
import pytest
import torch

from test_train import _train_epochs, _vae
from vaekit.config import ModelConfig, RunConfig, TrainConfig, build_section
from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.models.autoencoder import ModelOutput
from vaekit.models.factorvae import shuffle_dimensions
from vaekit.models.likelihoods import diagonal_normal
from vaekit.objectives.aggregate_posterior import (
    btcvae_terms,
    capacity_at,
    capacity_terms,
    infovae_terms,
    log_importance_weights,
    mmd2,
    pairwise_log_q,
    tc_decomposition,
)
from vaekit.objectives.elbo import Progress, elbo_terms
from vaekit.training.loop import fit


def _gaussian_aggregate(n=2000, d=3, rho=0.8, s=0.3, seed=0):
    """Posteriors q(z|x_n) = N(mu_n, s^2 I) with mu_n ~ N(0, S) (S: unit variances, correlation rho between
    dimensions 0 and 1): the aggregate is N(0, S + s^2 I) as n grows, whose TC is known."""
    g = torch.Generator().manual_seed(seed)
    cov = torch.eye(d, dtype=torch.float64)
    cov[0, 1] = cov[1, 0] = rho
    mu = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    logvar = torch.full_like(mu, 2 * math.log(s))
    qz = diagonal_normal(mu, logvar)
    z = mu + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    agg = cov + s * s * torch.eye(d, dtype=torch.float64)
    tc = 0.5 * (torch.log(torch.diagonal(agg)).sum() - torch.logdet(agg))
    return ModelOutput(px=None, z=z, qz=qz), float(tc)


def test_the_decomposition_adds_up_to_log_q_minus_log_p():
    out, _ = _gaussian_aggregate(n=64)
    for estimator in ("mss", "mws"):
        p = tc_decomposition(out, n_data=1000, estimator=estimator)
        total = out.qz.log_prob(out.z) - torch.distributions.Normal(0.0, 1.0).log_prob(out.z).sum(-1)
        assert torch.allclose(p["mi"] + p["tc"] + p["dim_kl"], total, atol=1e-10)


def test_pairwise_densities_and_the_weights():
    out, _ = _gaussian_aggregate(n=5)
    base = out.qz.base_dist
    pairs = pairwise_log_q(base.loc, base.scale, out.z)
    for i in range(5):
        for j in range(5):
            assert torch.allclose(
                pairs[i, j], torch.distributions.Normal(base.loc[j], base.scale[j]).log_prob(out.z[i])
            )
    w = log_importance_weights(6, 100, "mss", dtype=torch.float64).exp()
    assert torch.allclose(
        w.sum(1), torch.ones(6, dtype=torch.float64)
    )  # each code's weights: a distribution over the data
    assert torch.allclose(w.diagonal(), torch.full((6,), 1 / 100, dtype=torch.float64))
    assert torch.allclose(log_importance_weights(6, 100, "mws"), torch.full((6, 6), -math.log(600)))


def test_the_stratified_estimate_recovers_a_known_total_correlation():
    """With the whole data as the batch, MSS weighs each x almost as 1/N: the estimated TC is that
    of the Gaussian aggregate, -1/2 log(1 - r^2) for correlation r."""
    out, tc = _gaussian_aggregate(s=0.5)
    est = float(tc_decomposition(out, n_data=2000, estimator="mss")["tc"].mean())
    assert abs(est - tc) < 0.05 and tc > 0.25
    flat, tc0 = _gaussian_aggregate(rho=0.0, s=0.5, seed=1)
    assert abs(float(tc_decomposition(flat, n_data=2000)["tc"].mean()) - tc0) < 0.05 and tc0 == 0.0
    # minibatch weighted sampling, as published, divides every density by N B: its TC is offset by (D - 1) log N here
    mws = float(tc_decomposition(out, n_data=2000, estimator="mws")["tc"].mean())
    assert abs(mws - 2 * math.log(2000) - est) < 0.01


def test_btcvae_loss_weights_the_total_correlation():
    out, _ = _gaussian_aggregate(n=50)
    out = ModelOutput(
        px=diagonal_normal(torch.zeros(50, 4, dtype=torch.float64), torch.zeros(50, 4, dtype=torch.float64)),
        z=out.z,
        qz=out.qz,
    )
    x = torch.zeros(50, 4, dtype=torch.float64)
    cfg = TrainConfig(objective="btcvae", tc_beta=6.0)
    t = btcvae_terms(out, x, 0.5, cfg=cfg, at=Progress(n_data=500))
    assert torch.allclose(t["loss"], t["nll"] + 0.5 * (t["mi"] + 6.0 * t["tc"] + t["dim_kl"]))
    t1 = btcvae_terms(out, x, 1.0, cfg=TrainConfig(tc_beta=1.0), at=Progress(n_data=500))
    mc = t1["nll"] + out.qz.log_prob(out.z) - torch.distributions.Normal(0.0, 1.0).log_prob(out.z).sum(-1)
    assert torch.allclose(t1["loss"], mc)  # tc_beta = 1: the Monte-Carlo -ELBO
    with pytest.raises(VaekitError, match="number of training examples"):
        btcvae_terms(out, x, cfg=cfg)


def test_mmd_estimate_is_unbiased_and_separates():
    g = torch.Generator().manual_seed(0)
    same = [float(mmd2(torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g))) for _ in range(300)]
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(300)  # unbiased: 0 on average for one distribution
    apart = float(mmd2(torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g) + 1.0))
    assert apart > 10 * np.std(same)
    a, b = torch.randn(5, 2, generator=g), torch.randn(4, 2, generator=g)
    k = lambda u, v: 4.0 / (4.0 + float(((u - v) ** 2).sum()))  # C = 2 D
    brute = (
        sum(k(a[i], a[j]) for i in range(5) for j in range(5) if i != j) / 20
        + sum(k(b[i], b[j]) for i in range(4) for j in range(4) if i != j) / 12
        - 2 * sum(k(a[i], b[j]) for i in range(5) for j in range(4)) / 20
    )
    assert abs(float(mmd2(a, b)) - brute) < 1e-6


def test_infovae_adds_the_weighted_mmd_to_the_elbo():
    m = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8], likelihood="bernoulli"), (5,))
    x = torch.rand(16, 5).round()
    torch.manual_seed(0)
    out = m(x)
    t = infovae_terms(out, x, 1.0, cfg=TrainConfig(objective="infovae", mmd_weight=7.0))
    e = elbo_terms(out, x)
    assert torch.allclose(t["loss"], e["loss"] + 7.0 * t["mmd"]) and torch.equal(t["elbo"], e["elbo"])
    assert t["mmd"].shape == (16,) and len(set(t["mmd"].tolist())) == 1  # one batch figure, per example


def test_capacity_rises_and_the_loss_is_the_batch_mean_formula():
    cfg = TrainConfig(objective="capacity", capacity=20.0, capacity_epochs=4.0)
    assert [capacity_at(cfg, Progress(epoch=e)) for e in (0, 1, 4, 9)] == [0.0, 5.0, 20.0, 20.0]
    assert capacity_at(cfg, Progress()) == 20.0  # validation: past the ramp
    m = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8], likelihood="bernoulli"), (5,))
    x = torch.rand(16, 5).round()
    for c_epoch in (1.0, 4.0):
        torch.manual_seed(0)
        out = m(x)
        t = capacity_terms(out, x, 3.0, cfg=cfg, at=Progress(epoch=c_epoch))
        c = capacity_at(cfg, Progress(epoch=c_epoch))
        explicit = t["nll"].mean() + 3.0 * (t["kl"].mean() - c).abs()
        assert math.isclose(float(t["loss"].mean().detach()), float(explicit.detach()), rel_tol=1e-6)
        m.zero_grad()
        t["loss"].mean().backward()
        g1 = [p.grad.clone() for p in m.parameters()]
        m.zero_grad()
        torch.manual_seed(0)
        o2 = m(x)
        e = elbo_terms(o2, x)
        (e["nll"].mean() + 3.0 * (e["kl"].mean() - c).abs()).backward()
        assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(g1, m.parameters()))


def test_configs_of_the_objectives_are_checked():
    with pytest.raises(VaekitError, match="'btcvae' needs model.posterior = 'diagonal' and model.prior"):
        RunConfig(
            model=build_section("model", {"prior": "vamp"}), train=build_section("train", {"objective": "btcvae"})
        )
    with pytest.raises(VaekitError, match="'train.free_bits': does not apply"):
        RunConfig(train=build_section("train", {"objective": "capacity", "free_bits": 0.5}))
    for key in ("tc_beta", "mmd_weight", "capacity", "capacity_epochs"):
        with pytest.raises(VaekitError, match=f"'train.{key}'"):
            build_section("train", {key: -1.0})
    with pytest.raises(VaekitError, match="'train.tc_estimator'"):
        build_section("train", {"tc_estimator": "exact"})
    with pytest.raises(VaekitError, match="'model.tc_gamma'"):
        build_section("model", {"tc_gamma": -1.0})


def test_shuffled_dimensions_keep_each_marginal_and_lose_the_dependence():
    torch.manual_seed(0)
    a = torch.randn(4000, 1)
    z = torch.cat([a, a + 0.1 * torch.randn(4000, 1)], 1)  # correlation ~0.995
    s = shuffle_dimensions(z)
    assert all(torch.equal(z[:, d].sort().values, s[:, d].sort().values) for d in range(2))
    assert abs(float(torch.corrcoef(s.T)[0, 1])) < 0.05


def test_the_factorvae_discriminator_learns_the_total_correlation_and_gradients_split():
    """Trained alone on codes of a correlated Gaussian, D's logit difference estimates its TC,
    -1/2 log(1 - r^2); the TC penalty moves only the encoder, D's loss only D."""
    torch.manual_seed(0)
    m = build_model(
        ModelConfig(name="factorvae", latent_dim=2, hidden=[8], discriminator_hidden=[64, 64], tc_gamma=1.0), (5,)
    )
    opt = torch.optim.Adam(m.discriminator.parameters(), lr=3e-3)
    r = 0.8
    for _ in range(600):
        a = torch.randn(256, 1)
        z = torch.cat([a, r * a + math.sqrt(1 - r * r) * torch.randn(256, 1)], 1)
        opt.zero_grad()
        m.discriminator_loss(z).mean().backward()
        opt.step()
    a = torch.randn(20000, 1)
    z = torch.cat([a, r * a + math.sqrt(1 - r * r) * torch.randn(20000, 1)], 1)
    with torch.no_grad():
        est = float(m.tc_logits(z).mean())
    assert abs(est - (-0.5 * math.log(1 - r * r))) < 0.1
    out = m(torch.rand(8, 5))
    m.zero_grad()
    out.penalties["tc_penalty"].mean().backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in m.discriminator.parameters())
    assert any(p.grad is not None and p.grad.any() for p in m.encoder.parameters())
    m.zero_grad()
    out.penalties["discriminator"].mean().backward()
    assert all(p.grad is None or not p.grad.any() for p in m.encoder.parameters())
    assert all(p.grad is not None for p in m.discriminator.parameters())


OBJECTIVES = {
    "btcvae": dict(objective="btcvae", tc_beta=4.0),
    "infovae": dict(objective="infovae", mmd_weight=5.0),
    "capacity": dict(objective="capacity", capacity=5.0, capacity_epochs=2.0, beta=10.0),
}


@pytest.fixture
def data(images_npz):
    from vaekit.config import DataConfig
    from vaekit.data.prepared import prepare

    return prepare(DataConfig(name=str(images_npz), val_size=40, binarize="dynamic"))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_objectives_train_through_the_loop_and_resume_exactly(data, tmp_path, objective):
    cfg = TrainConfig(epochs=4, batch_size=32, lr=3e-3, schedule="cosine", progress=False, **OBJECTIVES[objective])
    straight = fit(_vae("vae", seed=0), data, cfg, run_dir=tmp_path / "a")
    first, last = straight.history[0], straight.history[-1]
    if objective == "capacity":  # the loss rises with C; the KL is pushed up towards it while the fit improves
        assert last["train_nll"] < first["train_nll"] and last["train_kl"] > first["train_kl"]
    else:
        assert last["train_loss"] < first["train_loss"]
    named = {
        "btcvae": ("train_mi", "train_tc", "train_dim_kl", "val_tc"),
        "infovae": ("train_mmd", "val_mmd"),
        "capacity": ("train_capacity", "val_capacity"),
    }[objective]
    assert set(named) <= set(straight.history[-1])
    if objective == "capacity":
        assert [round(r["train_capacity"], 6) for r in straight.history][-1] == 5.0 and straight.history[0][
            "train_capacity"
        ] < 5.0
    _train_epochs(data, cfg, tmp_path / "b", stop_after=2)
    resumed = fit(_vae("vae", seed=0), data, cfg, run_dir=tmp_path / "b", resume=True)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize(
    "setting",
    [
        ["--set", "train.objective=btcvae", "--set", "train.tc_estimator=mws"],
        ["--set", "train.objective=infovae"],
        ["--set", "train.objective=capacity"],
        ["--set", "model.name=factorvae", "--set", "model.discriminator_hidden=[16]"],
    ],
)
def test_each_trains_from_the_cli(tmp_path, images_npz, setting, capsys):
    import json

    from vaekit.cli import main

    code = main(
        [
            "train",
            "--set",
            f"data.name={images_npz}",
            "--set",
            "data.val_size=20",
            "--set",
            "data.binarize=dynamic",
            "--set",
            "model.likelihood=bernoulli",
            "--set",
            "model.latent_dim=2",
            "--set",
            "model.hidden=[16]",
            "--set",
            "train.epochs=1",
            "--set",
            "train.eval_k=5",
            "--quiet",
            *setting,
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    named = {
        "btcvae": "train_tc",
        "infovae": "train_mmd",
        "capacity": "train_capacity",
        "factorvae": "train_tc_penalty",
    }
    assert next(v for k, v in named.items() if k in " ".join(setting)) in record
