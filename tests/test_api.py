"""The README's Python API example, on generated data."""

import json

import torch
from torch import nn

import vaekit
from vaekit.config import DataConfig, ModelConfig, RunConfig, TrainConfig
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
