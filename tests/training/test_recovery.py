"""Runs that can always be recovered (issue 15): a refused resume override writes nothing, a run
killed before its first checkpoint trains again from the start, resume falls back past damaged
checkpoints, pruning is atomic, a signal in the last epoch stops the run, one epoch numbering, and
weights whose bytes changed are refused."""

import json
import os
import shutil
import signal

import pytest
import torch

from test_reliability import _same_weights, _vae  # the same small VAE and weight comparison
from vaekit.cli import main
from vaekit.config import DataConfig, TrainConfig
from vaekit.data.prepared import prepare
from vaekit.errors import TrainingInterrupted, VaekitError
from vaekit.training import checkpoints as C
from vaekit.training.checkpoints import checkpoint_dirs, load, load_checkpoint
from vaekit.training.loop import fit


@pytest.fixture
def data(images_npz):
    return prepare(DataConfig(name=str(images_npz), val_size=40, binarize="dynamic"))


CFG = dict(epochs=3, batch_size=32, lr=3e-3, schedule="cosine", ema=0.9, progress=False)


def _cli_train(images_npz, *extra):
    return [
        "train",
        "--set",
        f"data.name={images_npz}",
        "--set",
        "data.val_size=40",
        "--set",
        "model.hidden=[32]",
        "--set",
        "model.latent_dim=3",
        "--set",
        "train.batch_size=32",
        "--set",
        "train.eval_k=5",
        "--quiet",
        *extra,
    ]


def test_a_refused_resume_override_writes_nothing(images_npz, tmp_path, capsys):
    run = tmp_path / "r"
    assert main(_cli_train(images_npz, "--set", "train.epochs=1", "--out", str(run))) == 0
    before = (run / "config.json").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--set", "model.hidden=[16]", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not match the run's model config" in err
    assert (run / "config.json").read_bytes() == before  # the refused override left no trace
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2


def test_a_run_killed_before_its_first_checkpoint_trains_again_from_the_start(images_npz, tmp_path, capsys):
    straight, killed = tmp_path / "a", tmp_path / "b"
    assert main(_cli_train(images_npz, "--set", "train.epochs=2", "--out", str(straight))) == 0
    # What a SIGKILL in the first epoch leaves: the run's config and data record, its lock file, a
    # half-written checkpoint.
    killed.mkdir()
    shutil.copy(straight / "config.json", killed / "config.json")
    shutil.copy(straight / "data.json", killed / "data.json")
    (killed / ".lock").write_text("")
    (killed / "checkpoints" / ".step-000000003.abc.tmp").mkdir(parents=True)
    capsys.readouterr()
    assert main(["train", "--out", str(killed), "--set", "train.epochs=2"]) == 2
    assert f"holds a run; continue it with 'vaekit train --resume {killed}'" in capsys.readouterr().err
    assert main(["train", "--resume", str(killed), "--quiet"]) == 0
    assert "has no checkpoint yet: training it from the beginning" in capsys.readouterr().err
    _same_weights(load(straight / "model"), load(killed / "model"))
    assert json.loads((killed / "eval.json").read_text()) == json.loads((straight / "eval.json").read_text())
    assert not list((killed / "checkpoints").glob(".*"))


def _crash_at_step(monkeypatch, step):
    import vaekit.training.loop as T

    calls, inner = {"n": 0}, T.OBJECTIVES["elbo"]

    def objective(*a, **k):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == step:
                raise KeyboardInterrupt  # as abrupt as a kill, for what is on disk
        return inner(*a, **k)

    monkeypatch.setitem(T.OBJECTIVES, "elbo", objective)


def test_resume_falls_back_past_damaged_checkpoints(data, tmp_path, monkeypatch, capsys):
    cfg = TrainConfig(**CFG, checkpoint_every=3, keep_checkpoints=5)
    straight = fit(_vae(), data, cfg)
    run = tmp_path / "r"
    with monkeypatch.context() as m:
        _crash_at_step(m, 17)
        with pytest.raises(KeyboardInterrupt):
            fit(_vae(), data, cfg, run_dir=run)
    newest = checkpoint_dirs(run)[-1]
    assert newest.name == "step-000000016"
    raw = (newest / "state.safetensors").read_bytes()
    (newest / "state.safetensors").write_bytes(raw[: len(raw) // 2])  # a torn file
    (run / "checkpoints" / "step-999999999").mkdir()  # a stray empty directory
    capsys.readouterr()
    resumed = fit(_vae(), data, cfg, run_dir=run, resume=True)
    out, err = capsys.readouterr()
    assert "skipped damaged checkpoint step-999999999" in err and "skipped damaged checkpoint step-000000016" in err
    assert "resuming at epoch 2, step 15 (step-000000015)" in out
    _same_weights(straight.model, resumed.model)


def test_resume_refuses_when_no_checkpoint_is_intact(data, tmp_path):
    run = tmp_path / "r"
    fit(_vae(), data, TrainConfig(epochs=1, batch_size=32, progress=False), run_dir=run)
    (ck,) = checkpoint_dirs(run)
    (ck / "training.json").write_text("{")
    with pytest.raises(VaekitError, match=r"no intact checkpoint in .*step-000000008: cannot read .*training.json"):
        fit(_vae(), data, TrainConfig(epochs=2, batch_size=32, progress=False), run_dir=run, resume=True)


def test_pruning_is_atomic(data, tmp_path, monkeypatch):
    """A kill half-way through deleting an old checkpoint leaves no half checkpoint among them."""
    run = tmp_path / "r"
    real = shutil.rmtree

    def killed_mid_delete(path, *a, **k):
        if str(path).endswith(".del"):
            os.remove(os.path.join(path, "state.safetensors"))  # the first file went, then the kill
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(C.shutil, "rmtree", killed_mid_delete)
    with pytest.raises(KeyboardInterrupt):
        fit(_vae(), data, TrainConfig(epochs=3, batch_size=32, keep_checkpoints=1, progress=False), run_dir=run)
    monkeypatch.setattr(C.shutil, "rmtree", real)
    for ck in checkpoint_dirs(run):  # every listed checkpoint is whole
        load_checkpoint(ck, _vae())
    assert list((run / "checkpoints").glob(".*.del"))  # the half-deleted one is out of the way ...
    fit(
        _vae(), data, TrainConfig(epochs=3, batch_size=32, keep_checkpoints=1, progress=False), run_dir=run, resume=True
    )
    assert not list((run / "checkpoints").glob(".*.del"))  # ... and cleared by the next resume


def test_a_signal_in_the_last_epoch_stops_the_run(data, tmp_path, monkeypatch, capsys):
    cfg = TrainConfig(**CFG)
    straight = fit(_vae(), data, cfg)
    run = tmp_path / "r"
    import vaekit.training.loop as T

    inner, calls = T.mean_terms, {"n": 0}

    def validation(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # the last epoch's validation
            os.kill(os.getpid(), signal.SIGTERM)
        return inner(*a, **k)

    with monkeypatch.context() as m:
        m.setattr(T, "mean_terms", validation)
        with pytest.raises(TrainingInterrupted) as info:
            fit(_vae(), data, cfg, run_dir=run)
    assert info.value.exit_code == 143
    assert "SIGTERM at epoch 3, step 24 (the end of the epoch)" in str(info.value)
    capsys.readouterr()
    resumed = fit(_vae(), data, cfg, run_dir=run, resume=True)
    assert "resuming at epoch 3, step 24 (the end of the epoch)" in capsys.readouterr().out  # one numbering
    _same_weights(straight.model, resumed.model)


def test_interrupt_and_resume_messages_use_one_numbering(data, tmp_path, monkeypatch, capsys):
    import vaekit.training.loop as T

    run, inner, calls = tmp_path / "r", T.OBJECTIVES["elbo"], {"n": 0}

    def objective(*a, **k):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 10:
                os.kill(os.getpid(), signal.SIGINT)
        return inner(*a, **k)

    with monkeypatch.context() as m:
        m.setitem(T.OBJECTIVES, "elbo", objective)
        with pytest.raises(TrainingInterrupted) as info:
            fit(_vae(), data, TrainConfig(**CFG), run_dir=run)
    assert "at epoch 2, step 10;" in str(info.value)
    capsys.readouterr()
    fit(_vae(), data, TrainConfig(**CFG), run_dir=run, resume=True)
    assert "resuming at epoch 2, step 10 (step-000000010)" in capsys.readouterr().out


def test_a_flipped_bit_in_the_weights_is_refused(images_npz, tmp_path, capsys):
    run = tmp_path / "r"
    assert main(_cli_train(images_npz, "--set", "train.epochs=1", "--out", str(run))) == 0
    weights = run / "model" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 0x04  # one bit of the last tensor's data
    weights.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--k", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"weights '{weights}' are damaged: their SHA-256 does not match" in err
    raw[-3] ^= 0x04
    weights.write_bytes(bytes(raw))
    assert main(["evaluate", str(run), "--k", "5"]) == 0


def test_the_digest_covers_names_dtypes_shapes_and_bytes():
    t = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(2, dtype=torch.bfloat16)}
    d = C.tensor_digest(t)
    assert d == C.tensor_digest({k: v.clone() for k, v in t.items()})
    for other in (
        {**t, "a": t["a"].reshape(3, 2)},
        {**t, "b": t["b"].float()},
        {"c": t["a"], "b": t["b"]},
        {**t, "a": t["a"] + 1e-6},
    ):
        assert C.tensor_digest(other) != d
