"""The README's Python API example, on generated data."""

import json

import pytest
import torch
from torch import nn

import vaekit
from vaekit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from vaekit.errors import VaekitError
from vaekit.models import VAE


def test_train_load_and_use(tmp_path, images_npz):
    cfg = RunConfig(
        data=DataConfig(name=str(images_npz), val_size=30),
        model=ModelConfig(name="vae", latent_dim=2, hidden=[32]),
        train=TrainConfig(epochs=2, batch_size=32, eval_k=10, progress=False),
    )
    run = vaekit.train(cfg, run_dir=tmp_path / "vae")
    assert run["eval"]["log_px"]["unit"] == "nats"
    assert json.loads((tmp_path / "vae" / "config.json").read_text())["model"]["latent_dim"] == 2
    vae = vaekit.load(tmp_path / "vae" / "model")
    x = torch.rand(8, 1, 8, 8)
    q = vae.encode(x)
    assert q.event_shape == (2,) and vae.decode(q.mean).log_prob(x).shape == (8,)
    assert vae.sample(16).shape == (16, 1, 8, 8)
    assert torch.equal(vae.reconstruct(x), run["model"].reconstruct(x))
    res = vaekit.evaluate(vae, x, k=50)
    assert res["log_px"]["value"] > res["elbo"]["value"]  # the K-sample bound sits above the ELBO


def test_plug_in_nets_with_fit(images_npz):
    enc = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2 * 3))
    dec = nn.Sequential(nn.Linear(3, 64), nn.Unflatten(1, (1, 8, 8)))
    model = VAE(enc, dec, shape=(1, 8, 8), latent_dim=3, likelihood="bernoulli")
    data = vaekit.prepare(DataConfig(name=str(images_npz), val_size=30))
    res = vaekit.fit(model, data, TrainConfig(epochs=3, batch_size=32, lr=3e-3, progress=False))
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_pca_from_the_top_level(images_npz):
    data = vaekit.prepare(DataConfig(name=str(images_npz), val_size=0))
    pca = vaekit.PCA(5).fit(data.x_train)
    assert pca.transform(data.x_test).shape == (len(data.x_test), 5)
    assert pca.score_samples(data.x_test).shape == (len(data.x_test),)


def test_same_seed_same_model(tmp_path, images_npz):
    cfg = RunConfig(
        data=DataConfig(name=str(images_npz), val_size=30),
        model=ModelConfig(name="vae", latent_dim=2, hidden=[16]),
        train=TrainConfig(epochs=2, batch_size=32, eval_k=0, progress=False, seed=7),
    )
    torch.manual_seed(1)  # whatever the caller's RNG state ...
    a = vaekit.train(cfg, pictures=False)["model"]
    torch.randn(100)
    b = vaekit.train(cfg, pictures=False)["model"]  # ... the same seed gives the same weights
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_evaluate_protocol_is_the_library_and_the_cli_prints_it(tmp_path, images_npz, capsys):
    """`vaekit.evaluate_run` is `vaekit evaluate RUN`: the same numbers from Python and from the CLI;
    the split, the limit and k are the library's; interpolation likewise."""
    from vaekit.cli import main
    from vaekit.explorer.pictures import interpolate_codes
    from vaekit.explorer.traversal import interpolation

    cfg = RunConfig(
        data=DataConfig(name=str(images_npz), val_size=30),
        model=ModelConfig(name="vae", latent_dim=3, hidden=[16]),
        train=TrainConfig(epochs=1, batch_size=32, eval_k=0, progress=False),
    )
    run = tmp_path / "vae"
    vaekit.train(cfg, run_dir=run, pictures=False)
    res = vaekit.evaluate_run(run, split="val", limit=20, k=8)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "val", "--limit", "20", "--k", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(res))
    model = vaekit.load(run / "model")
    direct = vaekit.evaluate(model, vaekit.prepare(cfg.data).x_val[:20], k=8)
    assert res["elbo"]["value"] == direct["elbo"]["value"] and res["log_px"]["value"] == direct["log_px"]["value"]
    x = vaekit.prepare(cfg.data).x_test
    path = interpolation(model, x, 0, 3, steps=5)
    with torch.no_grad():
        za, zb = model.embed(x[[0, 3]])
        assert torch.equal(path, model.decode(interpolate_codes(za, zb, 5)).mean)
    assert torch.allclose(path[0], model.decode(za[None]).mean[0]) and path.shape == (5, 1, 8, 8)
    with pytest.raises(VaekitError, match="--b 999: index out of range"):
        interpolation(model, x, 0, 999)


def test_one_rule_for_every_seed(tmp_path, capsys):
    """A seed is 0..2**31-1 wherever it is given: a config key, --seed of any command, the Python API."""
    from vaekit.cli import main
    from vaekit.config import MAX_INT, build_section, check_seed

    assert check_seed(MAX_INT) == MAX_INT and check_seed(0) == 0
    for bad in (-1, MAX_INT + 1, 2**40, 1.5, True, "3"):
        with pytest.raises(VaekitError, match="seed"):
            check_seed(bad)
    with pytest.raises(VaekitError, match="at most 2147483647"):
        build_section("train", {"seed": MAX_INT + 1})
    for argv in (
        ["sample", "RUN", "--seed", str(2**40)],
        ["evaluate", "RUN", "--generation", "--seed", str(2**40)],
        ["evaluate", "RUN", "--disentanglement", "--seed", str(2**32)],
        ["features", "train", "mnist", "--out", "F", "--seed", "-1"],
    ):
        assert main(argv) == 2, argv
        assert "must be from 0 to 2147483647" in capsys.readouterr().err, argv
    with pytest.raises(VaekitError, match="--seed 4294967296: must be from 0 to 2147483647"):
        vaekit.evaluate_run_disentanglement(tmp_path, seed=2**32)


def test_disentanglement_counts_scale_with_the_fraction():
    from vaekit.metrics.disentanglement import Samples

    full, tenth = Samples(), Samples().scaled(0.1)
    assert tenth.mig_train == 1000 and tenth.dci_test == 500 and tenth.sap_test == 500
    assert (tenth.bins, tenth.factor_vae_batch, tenth.prune_std) == (full.bins, full.factor_vae_batch, full.prune_std)
    assert Samples().scaled(1e-6).factor_vae_eval == 10 and Samples().scaled(1.0) == full
