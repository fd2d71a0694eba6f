"""Latent traversals (issue 17, part 2): one row per latent dimension, sweeping that coordinate from
-span to +span standard deviations of p(z_d) around an example's code, rows ordered by KL (or by
the codes' variance without a prior). Checked on PCA, where a traversal is exactly linear, and on
a trained VAE."""

import numpy as np
import pytest
import torch

from conftest import digit_like, train_small_run
from vaekit.cli import main
from vaekit.config import ModelConfig, TrainConfig
from vaekit.errors import VaekitError
from vaekit.explorer.traversal import dimension_stats, traversal
from vaekit.models import PCA, build_model


def _x(n=300, size=8):
    x, y = digit_like(n, size=size)
    return torch.from_numpy(x).float()[:, None] / 255, torch.from_numpy(y).long()


def test_pca_traversal_is_the_code_plus_multiples_of_each_component():
    x, _ = _x()
    pca = PCA(5).fit(x)
    t = traversal(pca, x, index=7, steps=5, span=2.0)
    codes = pca.transform(x)
    assert t.dims == [0, 1, 2, 3, 4]  # PCA's codes have decreasing variance: the first component first
    assert torch.allclose(t.activity, codes.var(0), rtol=1e-5) and t.kl is None
    assert torch.allclose(t.scale, codes.var(0).sqrt(), rtol=1e-5)
    assert t.images.shape == (5, 5, 1, 8, 8)
    for r, d in enumerate(t.dims):
        row = t.images[r].flatten(1)  # (S, F): a straight line through the reconstruction
        assert torch.allclose(row[2], pca.reconstruct(x[7:8]).flatten(), atol=1e-5)  # the middle code is x's own
        step = row[1:] - row[:-1]
        assert torch.allclose(step, step[0].expand_as(step), atol=1e-5)
        z = torch.zeros(1, 5)
        z[0, d] = 1.0
        direction = pca.decode(z).mean.flatten() - pca.decode(torch.zeros(1, 5)).mean.flatten()
        assert torch.allclose(step[0], direction * t.scale[r] * 1.0, atol=1e-5)  # 2 * 2 / 4 = 1 sd per step


def _vae(x):
    torch.manual_seed(0)
    from vaekit.data.prepared import Data
    from vaekit.training.loop import fit

    data = Data("t", "image", tuple(x.shape[1:]), x, x[:0], x[:50])
    model = build_model(ModelConfig(name="vae", latent_dim=6, hidden=[64], likelihood="bernoulli"), data.shape)
    return fit(model, data, TrainConfig(epochs=15, batch_size=50, lr=3e-3, progress=False, eval_k=0)).model


def test_vae_rows_are_the_active_dimensions_most_kl_first():
    x, _ = _x()
    vae = _vae(x)
    kl, activity, scale = dimension_stats(vae, x)
    t = traversal(vae, x, index=3, steps=7)
    assert torch.equal(scale, torch.ones(6))  # N(0, I): one prior standard deviation is 1
    assert t.dims == [d for d in torch.argsort(kl, descending=True).tolist() if activity[d] > 0.01]
    assert len(t.dims) >= 1 and torch.all(t.kl[:-1] >= t.kl[1:])
    code = vae.embed(x[3:4])[0]
    for r, d in enumerate(t.dims):
        z = code.repeat(7, 1)
        z[:, d] = code[d] + torch.linspace(-3, 3, 7)
        assert torch.allclose(t.images[r], vae.decode(z).mean, atol=1e-6)
    picked = traversal(vae, x, index=3, dims=[5, 0], steps=3)
    assert picked.dims == [5, 0] and picked.images.shape == (2, 3, 1, 8, 8)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"index": 300}, "examples 0..299"),
        ({"dims": [6]}, "dimensions 0..5"),
        ({"steps": 1}, "must be 2..101"),
        ({"span": 0.0}, "must be in \\(0, 10\\]"),
    ],
)
def test_bad_requests_are_refused(kw, message):
    x, _ = _x(300)
    with pytest.raises(VaekitError, match=message):
        traversal(PCA(6).fit(x), x, **kw)


def test_traverse_through_the_cli(tmp_path, capsys):
    x, y = digit_like(300, size=8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    train_small_run(tmp_path / "d.npz", tmp_path / "vae", latent_dim=4, epochs=2)
    capsys.readouterr()
    assert (
        main(["traverse", str(tmp_path / "vae"), "--out", str(tmp_path / "t.png"), "--dims", "3,1", "--steps", "5"])
        == 0
    )
    assert (tmp_path / "t.png").stat().st_size > 0 and "dimensions 3, 1, 5 codes each" in capsys.readouterr().out
    for args, message in (
        (["--dims", "a,b"], "comma-separated integers"),
        (["--dims", "9"], "dimensions 0..3"),
        (["--image", "-1"], "--image -1"),
        (["--span", "nan"], "--span nan"),
    ):
        assert main(["traverse", str(tmp_path / "vae"), "--out", str(tmp_path / "u.png"), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and not (tmp_path / "u.png").exists()
