"""Mixed precision and torch.compile, on CPU: the nets under autocast, the objective in fp32, loss
scaling for fp16 (state checkpointed), a clear message when fp16 keeps overflowing, and compiled
training whose checkpoints load into a plain model."""

import pytest
import torch

from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data.prepared import prepare
from vaekit.errors import VaekitError
from vaekit.models import build_model
from vaekit.objectives.elbo import elbo_terms
from vaekit.training.checkpoints import checkpoint_dirs, load_checkpoint
from vaekit.training.loop import fit


@pytest.fixture
def data(images_npz):
    return prepare(DataConfig(name=str(images_npz), val_size=40, binarize="dynamic"))


def _vae():
    torch.manual_seed(0)
    return build_model(ModelConfig(name="vae", latent_dim=3, hidden=[32]), (1, 8, 8))


CFG = dict(epochs=3, batch_size=32, lr=3e-3, progress=False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nets_run_in_low_precision_and_densities_in_fp32(data, dtype):
    model = _vae()
    seen = []
    model.decoder.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = data.x_train[:16]
    with torch.autocast("cpu", dtype=dtype):
        out = model(x)
    terms = elbo_terms(out, x)
    assert seen == [dtype]  # the decoder computed in low precision
    assert out.qz.base_dist.loc.dtype == torch.float32 and all(v.dtype == torch.float32 for v in terms.values())
    with torch.no_grad():  # and the fp32 terms are close to a full fp32 pass with the same noise
        torch.manual_seed(1)
        ref = elbo_terms(model(x), x)["loss"]
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=dtype):
            low = model(x)
        assert torch.allclose(elbo_terms(low, x)["loss"], ref, rtol=0.02, atol=0.02)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_resumes_exactly(data, tmp_path, precision):
    cfg = TrainConfig(**CFG, precision=precision)
    straight = fit(_vae(), data, cfg, run_dir=tmp_path / "a")
    losses = [r["val_loss"] for r in straight.history]
    assert losses[-1] < losses[0]
    stopped = fit(_vae(), data, TrainConfig(**{**CFG, "epochs": 2}, precision=precision), run_dir=tmp_path / "b")
    assert stopped.history[-1]["epoch"] == 2
    resumed = fit(_vae(), data, cfg, run_dir=tmp_path / "b", resume=True)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    state = load_checkpoint(checkpoint_dirs(tmp_path / "b")[-1], _vae())
    assert ("scaler" in state) == (precision == "fp16")
    if precision == "fp16":
        assert state["scaler"]["scale"] > 0


def test_fp16_overflow_that_does_not_recover_is_reported(data):
    model = _vae()
    model.decoder.net[-1].weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    with pytest.raises(
        VaekitError,
        match=r"step 30: the loss is finite but the gradient norm is inf.*"
        r"fp16: the gradients overflowed 30 steps in a row .*try --set train.precision=bf16",
    ):
        fit(model, data, TrainConfig(**{**CFG, "epochs": 10}, precision="fp16"))


def test_fp16_nan_loss_is_reported_at_once(data):
    model = _vae()
    with torch.no_grad():
        model.decoder.net[-1].bias.fill_(float("nan"))
    with pytest.raises(VaekitError, match=r"diverged at epoch 1, step 1: the loss is nan"):
        fit(model, data, TrainConfig(**CFG, precision="fp16"))


@pytest.mark.slow
def test_compiled_training_matches_and_saves_plain_weights(data, tmp_path):
    plain = fit(_vae(), data, TrainConfig(**CFG))
    run = tmp_path / "c"
    compiled = fit(_vae(), data, TrainConfig(**CFG, compile=True), run_dir=run)
    for (k, a), b in zip(plain.model.state_dict().items(), compiled.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4), k
    from safetensors.numpy import load_file

    saved = load_file(str(checkpoint_dirs(run)[-1] / "model.safetensors"))
    assert saved.keys() == plain.model.state_dict().keys()  # no _orig_mod. prefix
    state = load_checkpoint(checkpoint_dirs(run)[-1], _vae())  # loads into a plain model
    assert state["trainer"]["epoch"] == 3
    resumed = fit(_vae(), data, TrainConfig(**{**CFG, "epochs": 4}), run_dir=run, resume=True)  # and resumes uncompiled
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
