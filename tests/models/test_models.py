import pytest
import torch
from torch import nn

from conftest import low_rank
from vaekit.config import ModelConfig, TrainConfig
from vaekit.data.prepared import Data
from vaekit.models import PCA, VAE, Autoencoder, build_model
from vaekit.training.loop import fit
from vaekit.tutorial.experiment import principal_angles_deg


def test_vae_reparameterised_sample_has_gradients():
    m = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8]), (4,))
    out = m(torch.rand(3, 4))
    out.z.sum().backward()
    assert all(p.grad is not None for p in m.encoder.parameters())


def test_custom_modules_plug_in():
    enc = nn.Sequential(nn.Flatten(), nn.Linear(12, 2 * 2))
    dec = nn.Sequential(nn.Linear(2, 12), nn.Unflatten(1, (3, 2, 2)))
    vae = VAE(enc, dec, shape=(3, 2, 2), latent_dim=2, likelihood="bernoulli")
    x = torch.rand(6, 3, 2, 2)
    assert vae(x).px.log_prob(x).shape == (6,)
    ae = Autoencoder(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), dec, (3, 2, 2), 2)
    assert ae.reconstruct(x).shape == x.shape


def _vector_data(x: torch.Tensor) -> Data:
    return Data(name="lowrank", kind="vector", shape=(x.shape[1],), x_train=x, x_val=x[:0], x_test=x[:50])


@pytest.mark.parametrize("tied", [True, False])
def test_linear_autoencoder_finds_the_pca_subspace(tied):
    """The tutorial's claim, shown: gradient descent on squared error recovers PCA's subspace."""
    x = low_rank(n=600, f=12, rank=3, noise=0.02)
    pca = PCA(3).fit(x)
    m = build_model(ModelConfig(name="linear_ae", latent_dim=3, tied=tied), (12,))
    fit(m, _vector_data(x), TrainConfig(epochs=150, batch_size=100, lr=1e-2, schedule="cosine", progress=False))
    angles = principal_angles_deg(pca.components_, m.subspace())
    assert angles.max() < 2.0, angles
    se_pca = ((pca.reconstruct(x) - x) ** 2).sum(1).mean()
    se_ae = ((m.reconstruct(x) - x) ** 2).sum(1).mean()
    total = ((x - x.mean(0)) ** 2).sum(1).mean()
    assert se_ae < 1.5 * se_pca < 0.001 * total  # as good as PCA, down to the noise floor


def test_untrained_linear_autoencoder_is_not_pca():
    x = low_rank(n=600, f=12, rank=3, noise=0.02)
    m = build_model(ModelConfig(name="linear_ae", latent_dim=3, tied=True), (12,))
    assert principal_angles_deg(PCA(3).fit(x).components_, m.subspace()).max() > 10


def test_unknown_arch_for_vectors():
    from vaekit.errors import VaekitError

    with pytest.raises(VaekitError, match="needs image data"):
        build_model(ModelConfig(name="vae", arch="conv"), (5,))


def test_variance_captured_is_one_for_pcas_own_subspace_and_less_otherwise():
    from vaekit.tutorial.experiment import variance_captured

    x = low_rank(n=500, f=10, rank=4, noise=0.1)
    pca = PCA(2).fit(x)
    assert variance_captured(x, pca.mean_, pca.components_, pca.components_) == pytest.approx(1.0)
    other = torch.randn(2, 10, generator=torch.Generator().manual_seed(0))
    assert variance_captured(x, pca.mean_, other, pca.components_) < 0.9
