import json
import math

import pytest
import torch

from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data.prepared import prepare
from vaekit.models import build_model
from vaekit.training.loop import fit, kl_weight, lr_factor


@pytest.fixture
def data(images_npz):
    return prepare(DataConfig(name=str(images_npz), val_size=40, binarize="dynamic"))


FRONTIER = {  # the models of the frontier issue, each as small as it gets
    "vae": dict(name="vae", latent_dim=3, hidden=[32]),
    "iaf": dict(name="vae", latent_dim=3, hidden=[32], posterior="iaf", flow_hidden=[16]),
    "nsf": dict(name="vae", latent_dim=3, hidden=[32], posterior="nsf", flow_hidden=[16]),
    "hvae": dict(name="hvae", latent_dims=[3, 2], hidden=[32, 16]),
    "vqvae": dict(
        name="vqvae", channels=[8, 16], depth=1, codebook_size=16, codebook_dim=4, prior_width=16, prior_layers=1
    ),
    "factorvae": dict(name="factorvae", latent_dim=3, hidden=[32], discriminator_hidden=[16, 16]),
}


def _vae(kind="vae", seed=None):
    if seed is not None:  # the same initial weights (runs compared bit for bit must start alike)
        torch.manual_seed(seed)
    return build_model(ModelConfig(**FRONTIER[kind]), (1, 8, 8))


@pytest.mark.parametrize("kind", [k for k in FRONTIER if k != "vae"])
def test_the_frontier_models_train_through_the_unchanged_loop(data, tmp_path, kind):
    """Registered, not special-cased: the loop lowers their loss, logs each KL part, saves and loads them."""
    import vaekit

    res = fit(_vae(kind), data, TrainConfig(epochs=4, batch_size=32, lr=3e-3, progress=False), run_dir=tmp_path / "run")
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0] * 0.9
    last = res.history[-1]
    if kind == "hvae":  # the KL of each layer, and they add up to the KL
        assert math.isclose(last["train_kl_z1"] + last["train_kl_z2"], last["train_kl"], rel_tol=1e-5)
        assert last["train_kl_z1"] >= 0 and last["train_kl_z2"] >= 0
    loaded = vaekit.load(tmp_path / "run" / "model")
    x = data.x_test[:8]
    assert torch.equal(loaded.reconstruct(x), res.model.eval().reconstruct(x))


def test_training_lowers_the_loss_and_logs(data, tmp_path):
    res = fit(_vae(), data, TrainConfig(epochs=4, batch_size=32, lr=3e-3, progress=False), run_dir=tmp_path / "run")
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < losses[0] * 0.9
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    assert {"train_loss", "train_nll", "train_kl", "val_loss", "val_elbo", "lr", "seconds"} <= set(lines[0])
    r = lines[-1]
    assert math.isclose(r["train_loss"], r["train_nll"] + r["train_kl"], rel_tol=1e-5)  # beta = 1
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["step-000000016", "step-000000024", "step-000000032"]  # the newest 3 of 4 epochs x 8 steps
    assert (tmp_path / "run" / "checkpoints" / ckpts[-1] / "training.json").exists()
    assert (tmp_path / "run" / "model" / "config.json").exists()


@pytest.mark.parametrize("kind", FRONTIER)
def test_resume_is_bit_identical(data, tmp_path, kind):
    """Stopped after epoch 2 and resumed, a run ends with exactly the weights of an uninterrupted one."""
    cfg = TrainConfig(epochs=4, batch_size=32, lr=3e-3, schedule="cosine", kl_warmup_epochs=2, progress=False)
    straight = fit(_vae(kind, seed=0), data, cfg, run_dir=tmp_path / "a")
    run = tmp_path / "b"
    _train_epochs(data, cfg, run, stop_after=2, kind=kind)
    torch.manual_seed(12345)  # the resume must not depend on the caller's RNG
    resumed = fit(_vae(kind, seed=0), data, cfg, run_dir=run, resume=True)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    epochs = [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]  # no gaps, no duplicates
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]


def _train_epochs(data, cfg, run, stop_after, kind="vae"):
    """Train with `cfg` but stop after `stop_after` epochs, as a killed process would."""
    import vaekit.training.loop as T

    class Stop(Exception):
        pass

    original = T.RunLog.log

    def log(self, record):
        original(self, record)
        if record["epoch"] == stop_after:
            raise Stop

    T.RunLog.log = log
    try:
        fit(_vae(kind, seed=0), data, cfg, run_dir=run)
    except Stop:
        pass
    finally:
        T.RunLog.log = original


def test_resume_drops_metrics_written_after_the_checkpoint(data, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=32, progress=False)
    run = tmp_path / "r"
    _train_epochs(data, cfg, run, stop_after=2)
    with open(run / "metrics.jsonl", "a") as f:  # a record whose checkpoint never landed
        f.write(json.dumps({"epoch": 3, "train_loss": 1.0}) + "\n")
    fit(_vae(), data, cfg, run_dir=run, resume=True)
    assert [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_early_stopping(data):
    # A learning rate so small that no update changes a weight: validation never improves.
    res = fit(_vae(), data, TrainConfig(epochs=10, batch_size=32, lr=1e-30, patience=2, progress=False))
    assert len(res.history) == 3 and res.best_epoch == 1


def test_returns_best_weights(data):
    res = fit(_vae(), data, TrainConfig(epochs=3, batch_size=32, lr=3e-3, progress=False))
    best = min(res.history, key=lambda r: r["val_loss"])
    assert res.best_epoch == best["epoch"]


def test_schedules():
    cfg = TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1, kl_warmup_epochs=2, beta=2.0)
    assert lr_factor(0, 100, cfg) == pytest.approx(0.01, rel=1e-3)  # warm-up starts small
    assert lr_factor(99, 100, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.099)), rel=1e-6)
    assert lr_factor(999, 100, cfg) < 1e-3  # cosine ends near zero
    assert kl_weight(0, 100, cfg) == 0.0 and kl_weight(100, 100, cfg) == 1.0 and kl_weight(500, 100, cfg) == 2.0
    exp = TrainConfig(schedule="exponential", gamma=0.5)
    assert lr_factor(250, 100, exp) == 0.25


def test_diverging_training_is_reported(data):
    from vaekit.errors import VaekitError

    model = _vae()
    with torch.no_grad():
        model.decoder.net[-1].bias.fill_(float("nan"))
    with pytest.raises(VaekitError, match="diverged at epoch 1"):
        fit(model, data, TrainConfig(epochs=2, batch_size=32, progress=False))


def test_train_state_is_plain_data_and_reads_older_checkpoints():
    """The trainer's state is a typed record saved as plain numbers; a checkpoint written before
    'overflows' was a field (fp32 runs never wrote it) still resumes, with the counter at 0."""
    import dataclasses
    import json
    import math

    from vaekit.training.state import TrainState

    s = TrainState(epoch=3, batch=5, step=77, best=91.5, best_epoch=2, best_step=60, bad_epochs=1, seconds=12.5)
    d = json.loads(json.dumps(dataclasses.asdict(s)))
    assert TrainState.from_dict(d) == s
    older = {k: v for k, v in d.items() if k != "overflows"}
    assert TrainState.from_dict(older).overflows == 0 and TrainState.from_dict(older).step == 77
    assert TrainState().best == math.inf and TrainState().lr_scale == 1.0
