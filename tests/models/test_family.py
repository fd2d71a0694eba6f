"""The VAE family from config and from Python: every likelihood, objective, prior, conditioning
mode and architecture builds, trains (the loss falls) and reports its numbers; bad combinations
are refused with a message that names the key."""

import json
import math

import numpy as np
import pytest
import torch

import vaekit
from vaekit.cli import main
from vaekit.config import DataConfig, ModelConfig, TrainConfig, from_dict
from vaekit.data.prepared import prepare
from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.training.loop import fit, kl_weight


def _run(images_npz, model: dict, train: dict | None = None, data: dict | None = None, **kw):
    raw = {
        "data": {"name": str(images_npz), "val_size": 30, **(data or {})},
        "model": {"name": "vae", "latent_dim": 3, "hidden": [32], **model},
        "train": {"epochs": 3, "batch_size": 32, "lr": 3e-3, "eval_k": 20, "progress": False, **(train or {})},
    }
    return vaekit.train(raw, pictures=False, **kw)


@pytest.mark.parametrize(
    "model,data",
    [
        ({"likelihood": "bernoulli"}, {"binarize": "dynamic"}),
        ({"likelihood": "continuous_bernoulli"}, {}),
        ({"likelihood": "gaussian", "sigma": 0.2}, {"dequantize": "uniform"}),
        ({"likelihood": "gaussian_shared"}, {"dequantize": "uniform"}),
        ({"likelihood": "gaussian_pixel"}, {"dequantize": "uniform"}),
        ({"likelihood": "discretized_logistic"}, {}),
        ({"likelihood": "discretized_logistic_mixture", "mixture_components": 3}, {}),
    ],
    ids=lambda v: "-".join(str(x) for x in v.values()),
)
def test_every_likelihood_trains_and_reports_comparable_figures(images_npz, model, data):
    res = _run(images_npz, model, data=data)
    losses = [r["train_loss"] for r in res["history"]]
    assert losses[-1] < losses[0]
    ev = res["eval"]
    assert ev["log_px"]["value"] >= ev["elbo"]["value"] - 1.0
    discrete = model["likelihood"] in ("bernoulli", "discretized_logistic", "discretized_logistic_mixture")
    if discrete:  # a mass function: log P <= 0, bits/dim = -log2 P / D
        assert ev["log_px"]["value"] < 0
        assert math.isclose(ev["bits_per_dim"]["value"], -ev["log_px"]["value"] / (64 * math.log(2)), rel_tol=1e-9)
    elif data.get("dequantize"):  # a density on dequantised 8-bit data: 8 bits added for the levels
        assert math.isclose(
            ev["bits_per_dim"]["value"],
            (-ev["log_px"]["value"] + 64 * math.log(256)) / (64 * math.log(2)),
            rel_tol=1e-9,
        )
    else:
        assert "bits_per_dim" not in ev  # a density on undequantised data has none
    # an estimate of I(x; z) >= 0 (it can dip just below 0 when q ignores x), capped by log N
    assert "mutual_information" in ev and -0.05 <= ev["mutual_information"]["value"] <= math.log(60) + 0.01


def test_learned_sigma_moves_and_is_saved(images_npz, tmp_path):
    res = _run(
        images_npz,
        {"likelihood": "gaussian_shared", "sigma": 1.0},
        train={"epochs": 6, "lr": 1e-2},
        data={"dequantize": "uniform"},
        run_dir=tmp_path / "r",
    )
    sigma = float(res["model"].observation.log_sigma.detach().exp())
    assert sigma < 0.9  # fitted towards the reconstruction error, away from its start
    assert float(vaekit.load(tmp_path / "r" / "model").observation.log_sigma.detach().exp()) == pytest.approx(sigma)


@pytest.mark.parametrize(
    "train",
    [
        {"objective": "iwae", "samples": 5},
        {"objective": "elbo", "samples": 3},
        {"free_bits": 0.25},
        {"kl_schedule": "cyclic", "kl_warmup_epochs": 0.5, "kl_cycle_epochs": 1.0},
        {"beta": 4.0},
        {"ema": 0.9},
    ],
    ids=lambda t: "-".join(f"{k}={v}" for k, v in t.items()),
)
def test_objectives_and_aids_train(images_npz, train):
    res = _run(images_npz, {"likelihood": "bernoulli"}, train=train, data={"binarize": "dynamic"})
    losses = [r["train_loss"] for r in res["history"]]
    assert losses[-1] < losses[0]
    if train.get("objective") == "iwae":
        assert "train_iwae" in res["history"][0] and res["history"][-1]["val_iwae"] >= res["history"][-1]["val_elbo"]


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_learned_priors_train_and_sample(images_npz, prior):
    res = _run(
        images_npz, {"likelihood": "bernoulli", "prior": prior, "prior_components": 6}, data={"binarize": "dynamic"}
    )
    m = res["model"]
    assert [r["train_loss"] for r in res["history"]][-1] < res["history"][0]["train_loss"]
    p = m.prior()
    assert p.event_shape == (3,) and p.mixture_distribution.probs.shape == (6,)
    s = m.sample(10, generator=torch.Generator().manual_seed(0))
    assert s.shape == (10, 1, 8, 8)
    assert torch.equal(s, m.sample(10, generator=torch.Generator().manual_seed(0)))


def test_vamp_prior_is_the_mean_of_the_pseudo_input_posteriors():
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8], prior="vamp", prior_components=3), (5,))
    z = torch.randn(4, 2)
    q = m.encode(m.prior_module.pseudo_inputs)  # batch of 3 posteriors
    direct = torch.logsumexp(torch.stack([q.log_prob(zi[None].expand(3, 2)) for zi in z]), 1) - math.log(3)
    assert torch.allclose(m.prior().log_prob(z), direct, atol=1e-6)
    # the pseudo-inputs start at training examples when the API trains
    x = torch.rand(50, 5)
    m.prior_module.init_from(x, torch.Generator().manual_seed(0))
    assert all(any(torch.equal(u, xi) for xi in x) for u in m.prior_module.pseudo_inputs)


def test_vamp_prior_gradients_reach_the_pseudo_inputs(images_npz):
    m = build_model(
        ModelConfig(name="vae", latent_dim=2, hidden=[8], prior="vamp", prior_components=3, likelihood="gaussian"), (5,)
    )
    x = torch.randn(6, 5)
    from vaekit.objectives.elbo import elbo_terms

    elbo_terms(m(x), x)["loss"].mean().backward()
    assert m.prior_module.pseudo_inputs.grad.abs().sum() > 0


def test_conditional_vae_generates_the_class_it_is_asked_for(images_npz, tmp_path, capsys):
    """The generated 'digits' are bars at row = label; a CVAE asked for label k must put its bar there."""
    res = _run(
        images_npz,
        {"likelihood": "continuous_bernoulli", "conditional": True, "hidden": [64]},
        train={"epochs": 25},
        run_dir=tmp_path / "cvae",
    )
    m = res["model"]
    assert (
        m.num_classes == 8 and json.loads((tmp_path / "cvae" / "config.json").read_text())["model"]["num_classes"] == 8
    )
    g = torch.Generator().manual_seed(0)
    hits = []
    for k in range(8):
        s = m.sample(20, generator=g, y=k)  # (20, 1, 8, 8)
        brightest_row = s.mean(-1).squeeze(1).argmax(1)  # (20,)
        hits.append((brightest_row == k).float().mean())
        assert hits[-1] >= 0.7, k
    assert sum(hits) / 8 >= 0.9
    # from the CLI
    assert main(["sample", str(tmp_path / "cvae"), "--label", "3", "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").exists()
    assert main(["sample", str(tmp_path / "cvae"), "--label", "9", "--out", str(tmp_path / "t.png")]) == 2
    assert "--label 9: this model knows labels 0..7" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()


def test_conditional_needs_labels_and_unconditional_refuses_label(tmp_path, capsys):
    x = (np.random.default_rng(0).random((80, 6)) * 255).astype(np.uint8)
    p = tmp_path / "nolabels.npy"
    np.save(p, x)
    with pytest.raises(VaekitError, match="model.conditional = true needs labels; data .* has none"):
        vaekit.train(
            {
                "data": {"name": str(p), "val_size": 0},
                "model": {"name": "vae", "conditional": True, "hidden": [8]},
                "train": {"epochs": 1, "progress": False},
            },
            pictures=False,
        )


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 9, 7)])
def test_resnet_nets_keep_the_shape(shape):
    torch.manual_seed(0)
    m = build_model(
        ModelConfig(
            name="vae",
            arch="resnet",
            latent_dim=4,
            channels=[8, 16],
            depth=2,
            likelihood="discretized_logistic_mixture",
            mixture_components=2,
        ),
        shape,
    )
    x = torch.rand(2, *shape)
    out = m(x)
    assert out.z.shape == (2, 4) and out.px.event_shape == shape and out.px.log_prob(x).shape == (2,)
    assert m.reconstruct(x).shape == (2, *shape)
    n_blocks = sum(type(mod).__name__ == "ResBlock" for mod in m.modules())
    assert n_blocks == 2 * 2 * 2  # depth x stages x (encoder + decoder)


def test_residual_and_gated_mlps():
    torch.manual_seed(0)
    res = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[16, 16], block="residual"), (6,))
    gated = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[16, 16], block="gated"), (6,))
    dense = res.encoder.net[1]
    assert dense.skip and not res.encoder.net[0].skip  # 6 -> 16 cannot skip; 16 -> 16 does
    h = torch.randn(3, 16)
    assert torch.allclose(dense(h), h + torch.relu(dense.linear(h)))
    g = gated.encoder.net[0]
    v = torch.randn(3, 6)
    assert torch.allclose(g(v), g.linear(v) * torch.sigmoid(g.gate(v)))


def test_dropout_is_random_in_training_and_off_in_evaluation(images_npz, tmp_path):
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="ae", latent_dim=2, hidden=[64, 32], dropout=0.5, activation="tanh"), (6,))
    drops = [layer for layer in m.encoder.net if isinstance(layer, torch.nn.Dropout)]
    assert [d.p for d in drops] == [0.5, 0.5]  # after each hidden layer, none after the output
    x = torch.randn(4, 6)
    m.train()
    h = m.encoder.net[:3](x)  # linear, tanh, dropout: (4, 64)
    full = torch.tanh(m.encoder.net[0](x))
    kept = h != 0
    assert 0.3 < kept.float().mean() < 0.7  # about half the units are zeroed ...
    assert torch.allclose(h[kept], 2 * full[kept])  # ... and the rest scaled by 1 / (1 - p)
    assert not torch.equal(m.encoder(x), m.encoder(x))
    m.eval()
    assert torch.equal(m.encoder(x), m.encoder(x))
    # trained from config, saved and loaded: evaluation is deterministic and equals the trained model
    res = _run(images_npz, {"name": "ae", "dropout": 0.2, "hidden": [32, 16]}, run_dir=tmp_path / "run")
    loaded = vaekit.load(tmp_path / "run" / "model")
    xb = torch.rand(5, 1, 8, 8)
    assert torch.equal(loaded.reconstruct(xb), res["model"].reconstruct(xb))


def test_kl_schedules():
    lin = TrainConfig(beta=2.0, kl_warmup_epochs=2)
    cyc = TrainConfig(beta=2.0, kl_schedule="cyclic", kl_warmup_epochs=1, kl_cycle_epochs=2)
    assert [kl_weight(s, 10, lin) for s in (0, 10, 20, 40)] == [0.0, 1.0, 2.0, 2.0]
    assert [kl_weight(s, 10, cyc) for s in (0, 5, 10, 15, 20, 25)] == [0.0, 1.0, 2.0, 2.0, 0.0, 1.0]


def test_ema_weights_are_what_training_returns_and_saves(images_npz, tmp_path):
    data = prepare(DataConfig(name=str(images_npz), val_size=30, binarize="dynamic"))
    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, ema=0.5, progress=False)
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="vae", latent_dim=3, hidden=[16], likelihood="bernoulli"), (1, 8, 8))
    ref = {k: v.clone() for k, v in m.state_dict().items()}
    # replay the same steps by hand: ema <- 0.5 ema + 0.5 w after each step
    res = fit(m, data, cfg, run_dir=tmp_path / "run")
    saved = vaekit.load(tmp_path / "run" / "model")
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, saved.state_dict()[k])
    assert any(not torch.equal(v, ref[k]) for k, v in res.model.state_dict().items())
    # resume with EMA is bit-identical too
    cfg3 = TrainConfig(epochs=3, batch_size=32, lr=3e-3, ema=0.5, progress=False)
    torch.manual_seed(0)
    straight = fit(
        build_model(ModelConfig(name="vae", latent_dim=3, hidden=[16], likelihood="bernoulli"), (1, 8, 8)),
        data,
        cfg3,
        run_dir=tmp_path / "a",
    )
    torch.manual_seed(0)
    fit(
        build_model(ModelConfig(name="vae", latent_dim=3, hidden=[16], likelihood="bernoulli"), (1, 8, 8)),
        data,
        cfg,
        run_dir=tmp_path / "b",
    )
    resumed = fit(
        build_model(ModelConfig(name="vae", latent_dim=3, hidden=[16], likelihood="bernoulli"), (1, 8, 8)),
        data,
        cfg3,
        run_dir=tmp_path / "b",
        resume=True,
    )
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_ema_average_is_an_exponential_average():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    lin = torch.nn.Linear(1, 1, bias=False)
    ema = AveragedModel(lin, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    values = [1.0, 2.0, 4.0]
    expect = None
    for v in values:
        with torch.no_grad():
            lin.weight.fill_(v)
        ema.update_parameters(lin)
        expect = v if expect is None else 0.9 * expect + 0.1 * v
    assert math.isclose(float(ema.module.weight.detach()), expect, rel_tol=1e-6)


def test_dequantisation_keeps_each_value_in_its_bin(images_npz):
    plain = prepare(DataConfig(name=str(images_npz), val_size=30))
    deq = prepare(DataConfig(name=str(images_npz), val_size=30, dequantize="uniform"))
    assert deq.levels == 256 and deq.dequantized
    k = torch.round(plain.x_test * 255)
    assert torch.all((deq.x_test >= k / 256) & (deq.x_test < (k + 1) / 256))
    torch.manual_seed(0)
    a = deq.train_batch(torch.arange(5))
    b = deq.train_batch(torch.arange(5))
    assert not torch.equal(a, b)  # fresh noise every batch
    assert torch.equal(torch.floor(a * 256), torch.round(plain.x_train[:5] * 255))
    with pytest.raises(VaekitError, match="data.dequantize = 'uniform' needs 8-bit"):
        prepare(DataConfig(name=str(images_npz), binarize="dynamic", dequantize="uniform"))


@pytest.mark.parametrize(
    "model,data,message",
    [
        ({"likelihood": "bernoulli"}, {}, "set data.binarize = 'dynamic'"),
        ({"likelihood": "gaussian_shared"}, {}, "set data.dequantize = 'uniform'"),
        ({"likelihood": "discretized_logistic"}, {"dequantize": "uniform"}, "this data is dequantised"),
        ({"likelihood": "discretized_logistic"}, {"binarize": "dynamic"}, "not 8-bit"),
    ],
)
def test_likelihoods_that_do_not_fit_the_data_are_refused(images_npz, tmp_path, model, data, message):
    with pytest.raises(VaekitError, match=message.replace(".", r"\.").replace("(", r"\(")):
        _run(images_npz, model, data=data, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_user_can_insist_on_the_tutorials_loss(images_npz):
    res = _run(images_npz, {"likelihood": "bernoulli", "likelihood_check": False}, train={"epochs": 1})
    assert "likelihood_note" in res["eval"]


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"train": {"objective": "iwae", "free_bits": 0.5}}, "train.free_bits"),
        ({"model": {"prior": "mog"}, "train": {"free_bits": 0.5}}, "needs model.prior = 'standard_normal'"),
        ({"model": {"prior": "vamp", "conditional": True}}, "'vamp' is not available for a conditional VAE"),
        ({"train": {"kl_schedule": "cyclic", "kl_warmup_epochs": 2}}, "train.kl_cycle_epochs"),
        ({"train": {"ema": 1.5}}, "train.ema"),
        ({"model": {"likelihood": "poisson"}}, "model.likelihood"),
        ({"model": {"name": "pca", "likelihood": "bernoulli"}}, "fitted by squared error"),
        ({"train": {"samples": 0}}, "train.samples"),
        ({"model": {"dropout": 1.0}}, "model.dropout"),
    ],
)
def test_bad_combinations_name_the_key(raw, message):
    with pytest.raises(VaekitError, match=message.replace(".", r"\.").replace("(", r"\(")):
        from_dict(raw)


def test_cli_refuses_with_one_line(images_npz, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[data]\nname = "{images_npz}"\n[model]\nlikelihood = "gaussian_pixel"\n[train]\nepochs = 1\nprogress = '
        f"false\n"
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.dequantize = 'uniform'" in err
    assert not (tmp_path / "run").exists()


def test_time_budget_stops_training(images_npz):
    data = prepare(DataConfig(name=str(images_npz), val_size=30))
    m = build_model(ModelConfig(name="vae", latent_dim=3, hidden=[16]), (1, 8, 8))
    res = fit(m, data, TrainConfig(epochs=50, batch_size=32, max_minutes=1e-9, progress=False))
    assert len(res.history) == 1  # the first epoch ends past a tiny budget


def test_fast_bernoulli_log_prob_equals_torch():
    from vaekit.models.likelihoods import IndependentBernoulli

    logits = torch.randn(5, 4, 1, 3, 3, dtype=torch.float64) * 10
    x = torch.bernoulli(torch.full((4, 1, 3, 3), 0.4, dtype=torch.float64))
    ref = torch.distributions.Independent(torch.distributions.Bernoulli(logits=logits), 3)
    ours = IndependentBernoulli(logits, 3)
    assert torch.allclose(ours.log_prob(x), ref.log_prob(x), atol=1e-10)  # (K, B) against (B,): the batched path
    assert torch.allclose(ours.log_prob(x[None].expand(5, -1, -1, -1, -1)), ref.log_prob(x), atol=1e-10)
    assert torch.allclose(IndependentBernoulli(logits[0], 3).log_prob(x), ref.log_prob(x)[0], atol=1e-10)


def test_fast_gaussian_mixture_equals_torchs():
    from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

    from vaekit.models.priors import GaussianMixture

    g = torch.Generator().manual_seed(0)
    logits, loc = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    scale = torch.rand(7, 3, generator=g, dtype=torch.float64) + 0.2
    ref = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))
    z = torch.randn(4, 5, 3, generator=g, dtype=torch.float64) * 2
    assert torch.allclose(GaussianMixture(logits, loc, scale).log_prob(z), ref.log_prob(z), atol=1e-10)
