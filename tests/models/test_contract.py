"""Every model keeps the one contract of `vaekit.models.base`: the same methods, the same return
types and the same shapes, whatever the model, the net or the prior. Every registered model is
checked at its registry defaults (nothing to add here for a new model); MODELS below adds the
variants: nets, priors, posteriors, conditioning, custom nets."""

import pytest
import torch
from torch import nn
from torch.distributions import Distribution

from vaekit.config import ModelConfig
from vaekit.errors import VaekitError
from vaekit.models import PCA, VAE, Autoencoder, CannotSample, LatentModel, build_model, from_description
from vaekit.models.likelihoods import PointMass
from vaekit.registry import MODELS as REGISTERED
from vaekit.registry import POSTERIORS, PRIORS

B, D = 5, 3


def _custom(variational: bool):
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, (2 if variational else 1) * D))  # (B, 1, 4, 4) -> (B, D or 2D)
    dec = nn.Sequential(nn.Linear(D, 16), nn.Unflatten(1, (1, 4, 4)))
    cls = VAE if variational else Autoencoder
    return cls(enc, dec, (1, 4, 4), D, likelihood="bernoulli")


def _pca(shape):
    return PCA(D).fit(torch.rand(40, *shape, generator=torch.Generator().manual_seed(0)))


# name -> (data shape, builder). Every registered model and prior appears at least once.
MODELS = {
    "pca": ((1, 4, 4), lambda: _pca((1, 4, 4))),
    "pca_vectors": ((7,), lambda: _pca((7,))),
    "linear_ae_tied": ((7,), lambda: build_model(ModelConfig(name="linear_ae", latent_dim=D, tied=True), (7,))),
    "linear_ae_untied": ((1, 4, 4), lambda: build_model(ModelConfig(name="linear_ae", latent_dim=D), (1, 4, 4))),
    "ae_mlp": ((1, 6, 6), lambda: build_model(ModelConfig(name="ae", latent_dim=D, hidden=[16]), (1, 6, 6))),
    "ae_conv": (
        (3, 9, 7),
        lambda: build_model(ModelConfig(name="ae", arch="conv", latent_dim=D, channels=[4, 8]), (3, 9, 7)),
    ),
    **{
        f"vae_{prior}": (
            (1, 6, 6),
            lambda prior=prior: build_model(
                ModelConfig(name="vae", latent_dim=D, hidden=[16], prior=prior, prior_components=4), (1, 6, 6)
            ),
        )
        for prior in PRIORS
    },
    "vae_conv": (
        (1, 8, 8),
        lambda: build_model(ModelConfig(name="vae", arch="conv", latent_dim=D, channels=[4, 8]), (1, 8, 8)),
    ),
    "vae_resnet_rgb": (
        (3, 8, 8),
        lambda: build_model(
            ModelConfig(
                name="vae", arch="resnet", latent_dim=D, channels=[4, 4], depth=1, likelihood="discretized_logistic"
            ),
            (3, 8, 8),
        ),
    ),
    "vae_vectors": (
        (7,),
        lambda: build_model(ModelConfig(name="vae", latent_dim=D, hidden=[16], likelihood="gaussian"), (7,)),
    ),
    **{
        f"vae_{post}": (
            (1, 6, 6),
            lambda post=post: build_model(
                ModelConfig(name="vae", latent_dim=D, hidden=[16], posterior=post, flow_hidden=[8]), (1, 6, 6)
            ),
        )
        for post in POSTERIORS
    },
    "hvae_mlp": (
        (1, 6, 6),
        lambda: build_model(ModelConfig(name="hvae", latent_dims=[2, 1], hidden=[16, 8]), (1, 6, 6)),
    ),
    "hvae_conv": (
        (3, 8, 8),
        lambda: build_model(
            ModelConfig(
                name="hvae", arch="conv", latent_dims=[1, 1, 1], hidden=[8], channels=[4, 8], likelihood="gaussian"
            ),
            (3, 8, 8),
        ),
    ),
    "vqvae": (
        (1, 8, 8),
        lambda: build_model(
            ModelConfig(
                name="vqvae", channels=[4, 8], depth=1, codebook_size=8, codebook_dim=3, prior_width=8, prior_layers=1
            ),
            (1, 8, 8),
        ),
    ),
    "factorvae": (
        (1, 6, 6),
        lambda: build_model(
            ModelConfig(name="factorvae", latent_dim=D, hidden=[16], discriminator_hidden=[8]), (1, 6, 6)
        ),
    ),
    "cvae": (
        (1, 6, 6),
        lambda: build_model(
            ModelConfig(name="vae", latent_dim=D, hidden=[16], conditional=True, num_classes=4), (1, 6, 6)
        ),
    ),
    "cae": (
        (1, 6, 6),
        lambda: build_model(
            ModelConfig(name="ae", latent_dim=D, hidden=[16], conditional=True, num_classes=4), (1, 6, 6)
        ),
    ),
    "custom_ae": ((1, 4, 4), lambda: _custom(False)),
    "custom_vae": ((1, 4, 4), lambda: _custom(True)),
}


def _at_defaults(name: str, shape: tuple[int, ...]):
    """A registered model at its registry defaults (fitted, where it is fitted rather than trained)."""
    model = build_model(ModelConfig(name=name), shape)
    if isinstance(model, PCA):
        model.fit(torch.rand(40, *shape, generator=torch.Generator().manual_seed(0)))
    return model


MODELS |= {f"{n}_defaults": ((1, 8, 8), lambda n=n: _at_defaults(n, (1, 8, 8))) for n in REGISTERED.names()}


def _inputs(name, shape):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(B, *shape, generator=g)
    if "resnet" in name:  # 8-bit levels for the discretised logistic
        x = torch.round(x * 255) / 255
    y = torch.randint(0, 4, (B,), generator=g) if name in ("cvae", "cae") else None
    return x, y


def test_a_model_at_its_defaults_has_the_code_size_its_registry_entry_gives():
    for name in REGISTERED.names():
        m = MODELS[f"{name}_defaults"][1]()
        given = REGISTERED.defaults(name)["latent_dim"]
        if m.discrete_code:  # one index per position of the code grid
            assert m.latent_dim == 4
        else:
            assert m.latent_dim in (given, 2 * given), name  # hvae: two layers of latent_dim by default


def test_every_registered_model_and_prior_is_covered():
    covered = {m.describe()["model"] for m in (f() for _, f in MODELS.values())}
    assert set(REGISTERED.names()) <= covered | {"custom"}
    assert all(f"vae_{p}" in MODELS for p in PRIORS)
    assert all(f"vae_{p}" in MODELS for p in POSTERIORS)


@pytest.mark.parametrize("name", MODELS)
def test_the_contract(name):
    shape, make = MODELS[name]
    m = make()
    x, y = _inputs(name, shape)
    assert isinstance(m, LatentModel)
    d = 4 if m.discrete_code else D  # a VQ-VAE's code: one index per position of its 2 x 2 grid
    if name.endswith("_defaults"):  # the code size is the model's default (checked beside the registry's below)
        d = m.latent_dim
    assert m.shape == shape and m.latent_dim == d and m.conditional == (y is not None)
    m.eval()

    qz = m.encode(x, y)  # q(z|x): always a distribution, batch (B,), event (D,)
    assert isinstance(qz, Distribution) and qz.batch_shape == (B,) and qz.event_shape == (d,)
    # deterministic encoders answer with a point mass (a VQ-VAE's: one code, with a prior over codes)
    assert isinstance(qz, PointMass) != (m.variational and not m.discrete_code)
    z = m.embed(x, y)
    if m.diagonal_posterior or not m.variational or m.discrete_code:  # the mean in closed form
        assert z.shape == (B, d) and torch.allclose(z, qz.mean)
    else:  # a flow or a hierarchy: its stated point code, and codes drawn with their log-density
        assert z.shape == (B, d) and torch.allclose(z, qz.point)
        zk, log_q = qz.rsample_and_log_prob((2,))
        assert zk.shape == (2, B, d) and torch.allclose(log_q, qz.log_prob(zk), atol=1e-4)
    assert m.diagonal_posterior == (m.variational and isinstance(qz, torch.distributions.Independent))

    px = m.decode(z, y)  # p(x|z): a distribution over x, batch (B,)
    assert isinstance(px, Distribution) and px.batch_shape == (B,) and px.event_shape == shape
    assert px.mean.shape == (B, *shape) and px.log_prob(x).shape == (B,)
    zk = torch.stack([z, z])  # (K, B, D) codes decode to batch (K, B)
    assert m.decode(zk, y).batch_shape == (2, B)

    rec = m.reconstruct(x, y)
    assert rec.shape == (B, *shape) and torch.allclose(rec, px.mean)

    if m.can_sample:
        assert isinstance(m.prior(), Distribution) and m.prior().event_shape == (d,)
        labels = None if y is None else torch.arange(4)
        assert m.sample(4, generator=torch.Generator().manual_seed(0), y=labels).shape == (4, *shape)
    else:
        assert m.prior() is None
        with pytest.raises(CannotSample, match="no prior to sample from"):
            m.sample(4)
    if m.exact_likelihood:
        assert m.log_likelihood(x).shape == (B,)
    if m.variational and not m.discrete_code:
        assert m.encoder_log_variance(x, y).shape == (B, d)
    else:
        assert m.encoder_log_variance(x, y) is None


@pytest.mark.parametrize("name", MODELS)
def test_describe_rebuilds_the_same_model(name):
    """describe() + weights is all a model directory holds, and it gives back the same model."""
    shape, make = MODELS[name]
    m = make()
    x, y = _inputs(name, shape)
    meta = m.describe()
    kw = {}
    if meta["model"] == "custom":
        fresh = _custom(meta["variational"])
        kw = {"encoder": fresh.encoder, "decoder": fresh.decoder}
    again = from_description(meta, m.state_dict(), **kw)
    assert type(again) is type(m) and again.describe() == meta
    assert torch.equal(again.reconstruct(x, y), m.eval().reconstruct(x, y))


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(VaekitError, match="expected one of 'pca', 'linear_ae', 'ae', 'vae'"):
        build_model(ModelConfig(name="gan"), (4,))
    with pytest.raises(VaekitError, match="unknown prior 'flow'; allowed: standard_normal, mog, vamp"):
        PRIORS.get("flow")


def test_a_new_model_is_one_registration(tmp_path):
    """A model registered from outside trains, evaluates, saves and loads through the unchanged
    loop, evaluation and checkpoint code (the architecture's promise for new models)."""
    import vaekit
    from vaekit.config import TrainConfig, build_section
    from vaekit.data.prepared import Data
    from vaekit.metrics.evaluation import evaluate
    from vaekit.models.nets import build_mlp
    from vaekit.training.loop import fit

    class HalfVAE(VAE):
        """A VAE whose decoder sees the code scaled by 1/2 (enough to tell it apart)."""

        def decode(self, z, y=None):
            return super().decode(0.5 * z, y)

    def build(cfg, shape):
        enc, dec = build_mlp(cfg, shape, 2 * cfg.latent_dim, 0, shape)
        return HalfVAE(enc, dec, shape, cfg.latent_dim, cfg.likelihood, config=cfg)

    REGISTERED.register("half_vae", build, defaults={"latent_dim": 2, "hidden": [8], "likelihood": "bernoulli"})
    try:
        cfg = build_section("model", {"name": "half_vae"})
        assert cfg.latent_dim == 2 and cfg.hidden == [8]
        m = build_model(cfg, (6,))
        x = torch.bernoulli(torch.full((64, 6), 0.3), generator=torch.Generator().manual_seed(0))
        data = Data(name="t", kind="vector", shape=(6,), x_train=x, x_val=x[:16], x_test=x[:16])
        fit(m, data, TrainConfig(epochs=1, batch_size=16, progress=False), run_dir=tmp_path / "r")
        res = evaluate(m, x[:16], k=5)
        assert {"elbo", "log_px", "kl"} <= set(res)
        loaded = vaekit.load(tmp_path / "r" / "model")
        assert type(loaded) is HalfVAE and torch.equal(loaded.reconstruct(x), m.eval().reconstruct(x))
    finally:
        del REGISTERED["half_vae"]
    with pytest.raises(VaekitError, match="expected one of"):
        build_section("model", {"name": "half_vae"})


@pytest.mark.parametrize("name", MODELS)
def test_the_contract_holds_in_float64(name):
    """A model made float64 computes in float64 from end to end: its codes, its decodings, its
    samples and the evaluation (log p(x) by importance sampling) keep the input's dtype."""
    from vaekit.metrics.evaluation import evaluate

    shape, make = MODELS[name]
    m = make()
    m = m.double() if isinstance(m, nn.Module) else m
    x, y = _inputs(name, shape)
    x = x.double()
    m.eval()
    assert m.dtype == (torch.float64 if isinstance(m, nn.Module) else torch.float32)
    for t in (m.embed(x, y), m.reconstruct(x, y), m.decode(m.embed(x, y), y).mean):
        assert t.dtype == torch.float64
    if m.diagonal_posterior or not m.variational or m.discrete_code:
        assert m.encode(x, y).mean.dtype == torch.float64
    else:  # a flow's or a hierarchy's codes, drawn with their log-density
        assert all(t.dtype == torch.float64 for t in m.encode(x, y).rsample_and_log_prob((2,)))
    if m.can_sample:
        labels = None if y is None else torch.arange(4)
        assert m.sample(4, generator=torch.Generator().manual_seed(0), y=labels).dtype == torch.float64
    res = evaluate(m, x, k=4 if m.variational else 0, y=y)
    finite = [k for k, v in res.items() if isinstance(v["value"], float) and not v["value"] == v["value"]]
    assert not finite, finite
