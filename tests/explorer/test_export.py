"""ONNX export (issue 17, part 3): decoder and encoder files that onnxruntime runs with outputs equal
to PyTorch's within 1e-5, for MLP, conv and ResNet models, any batch size; from the CLI and Python;
a missing extra gets one line."""

import sys

import numpy as np
import pytest
import torch

from conftest import digit_like, train_small_run
from vaekit.cli import main
from vaekit.config import ModelConfig
from vaekit.errors import VaekitError
from vaekit.explorer.onnx_export import export_onnx, run_onnx
from vaekit.models import PCA, build_model

pytestmark = pytest.mark.usefixtures("onnx_registry_once")

CASES = {
    "mlp vae": ({"name": "vae", "arch": "mlp", "hidden": [32], "likelihood": "bernoulli"}, (1, 28, 28)),
    "mlp vae, continuous Bernoulli, gated": (
        {"name": "vae", "arch": "mlp", "hidden": [16, 16], "block": "gated", "likelihood": "continuous_bernoulli"},
        (1, 12, 12),
    ),
    "conv vae": ({"name": "vae", "arch": "conv", "channels": [8, 16], "likelihood": "bernoulli"}, (1, 28, 28)),
    "resnet vae, rgb": (
        {"name": "vae", "arch": "resnet", "channels": [8, 16], "depth": 1, "likelihood": "bernoulli"},
        (3, 32, 32),
    ),
    "conv ae": ({"name": "ae", "arch": "conv", "channels": [8, 16]}, (1, 28, 28)),
    "conditional mlp vae": (
        {
            "name": "vae",
            "arch": "mlp",
            "hidden": [16],
            "likelihood": "bernoulli",
            "conditional": True,
            "num_classes": 3,
        },
        (1, 8, 8),
    ),
}


# The default suite exports four kinds (MLP, conditional, conv, ResNet on RGB); the slow suite the other two.
SLOW_CASES = ("mlp vae, continuous Bernoulli, gated", "conv ae")


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES else c for c in CASES])
def test_onnxruntime_gives_pytorchs_outputs_at_any_batch_size(tmp_path, case):
    cfg, shape = CASES[case]
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=5, **cfg), shape).eval()
    files = export_onnx(model, tmp_path)
    for batch in (1, 7):
        z, x = torch.randn(batch, 5), torch.rand(batch, *shape)
        ys = (torch.arange(batch) % 3,) if model.conditional else ()
        with torch.no_grad():
            (x_mean,) = run_onnx(files["decoder"], z, *ys)
            assert x_mean.shape == (batch, *shape)
            assert torch.allclose(x_mean, model.decode(z, *ys).mean, atol=1e-5, rtol=0)
            enc = run_onnx(files["encoder"], x, *ys)
            assert torch.allclose(enc[0], model.embed(x, *ys), atol=1e-5, rtol=0)
            if model.variational:
                assert len(enc) == 2 and torch.allclose(enc[1], model.encoder_log_variance(x, *ys), atol=1e-5, rtol=0)
            else:
                assert len(enc) == 1


def test_export_through_the_cli(tmp_path, capsys):
    x, y = digit_like(200, size=8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    train_small_run(tmp_path / "d.npz", tmp_path / "vae", latent_dim=3, hidden=16)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "vae"), "--format", "onnx", "--part", "decoder"]) == 0
    assert (tmp_path / "vae" / "onnx" / "decoder.onnx").is_file() and not (
        tmp_path / "vae" / "onnx" / "encoder.onnx"
    ).exists()
    assert main(["export", str(tmp_path / "vae"), "--out", str(tmp_path / "o")]) == 0
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"decoder.onnx", "encoder.onnx"}
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_exports_its_two_linear_maps(tmp_path, whiten):
    """PCA, the tutorial's step 1, has no nn.Module, yet its maps export like any decoder and encoder."""
    g = torch.Generator().manual_seed(0)
    pca = PCA(3, whiten=whiten).fit(torch.rand(50, 1, 4, 4, generator=g))
    files = export_onnx(pca, tmp_path)
    for batch in (1, 6):
        z, x = torch.randn(batch, 3, generator=g), torch.rand(batch, 1, 4, 4, generator=g)
        assert torch.allclose(run_onnx(files["decoder"], z)[0], pca.decode(z).mean, atol=1e-5, rtol=0)
        (code,) = run_onnx(files["encoder"], x)
        assert code.shape == (batch, 3) and torch.allclose(code, pca.embed(x), atol=1e-5, rtol=0)


def test_a_missing_extra_or_an_unfitted_pca_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(VaekitError, match="this PCA is not fitted"):
        export_onnx(PCA(2), tmp_path)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(VaekitError, match="needs the 'onnxscript' package: pip install \"vaekit\\[onnx\\]\""):
        export_onnx(build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8]), (1, 8, 8)), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # builds the table twice more, about 2.5 s: the check of the fixture runs with the slow tests
def test_a_table_built_once_exports_the_same_files(tmp_path, onnx_registry_once, monkeypatch):
    """The suite builds the exporter's translation table once (conftest's `onnx_registry_once`); an
    export with a table of its own, as every user's export builds one, writes the same bytes."""
    from torch.onnx._internal.exporter import _registration

    model = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8]), (1, 8, 8))
    shared = export_onnx(model, tmp_path / "shared", ("decoder",))["decoder"]
    monkeypatch.setattr(_registration.ONNXRegistry, "from_torchlib", onnx_registry_once)
    own = export_onnx(model, tmp_path / "own", ("decoder",))["decoder"]
    assert shared.read_bytes() == own.read_bytes()
