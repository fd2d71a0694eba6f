"""A run can always be recovered: exact resume from any step (mid-epoch too), clean stops on
signals, NaN diagnosis and rollback, checkpoint retention and atomic pruning, resume past damaged
checkpoints, torn-write recovery, a refused override that writes nothing, and the run-directory
lock (in-process; the SIGKILL tests that need real processes are in test_kill.py)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from vaekit.cli import main
from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data.prepared import prepare
from vaekit.errors import TrainingInterrupted, VaekitError
from vaekit.models import build_model
from vaekit.training import checkpoints as C
from vaekit.training.checkpoints import checkpoint_dirs, load, load_checkpoint, save_pretrained
from vaekit.training.lock import RunLock
from vaekit.training.loop import fit


@pytest.fixture
def data(images_npz):
    return prepare(DataConfig(name=str(images_npz), val_size=40, binarize="dynamic"))


def _vae(**kw):
    torch.manual_seed(0)  # the same initial weights in every run of a test
    return build_model(ModelConfig(name="vae", latent_dim=3, hidden=[32], **kw), (1, 8, 8))


CFG = dict(epochs=3, batch_size=32, lr=3e-3, schedule="cosine", kl_warmup_epochs=1, ema=0.9, progress=False)


def _metrics(run):
    return [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class _Boom(Exception):
    pass


def _crash_at_step(monkeypatch, step, exc=_Boom):
    """Make the objective raise at the `step`-th training forward pass (1-based)."""
    import vaekit.training.loop as T

    calls = {"n": 0}
    original = T.OBJECTIVES["elbo"]

    def objective(*a, **k):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == step:
                raise exc()
        return original(*a, **k)

    monkeypatch.setitem(T.OBJECTIVES, "elbo", objective)
    return calls


@pytest.mark.parametrize("crash_step", [5, 8, 11])  # inside epoch 1, the last step of epoch 1, inside epoch 2
def test_resume_from_a_mid_epoch_checkpoint_is_bit_identical(data, tmp_path, monkeypatch, crash_step):
    cfg = TrainConfig(**CFG, checkpoint_every=3)
    straight = fit(_vae(), data, cfg, run_dir=tmp_path / "a")
    run = tmp_path / "b"
    with monkeypatch.context() as m:
        _crash_at_step(m, crash_step)
        with pytest.raises(_Boom):
            fit(_vae(), data, cfg, run_dir=run)
    saved = load_checkpoint(checkpoint_dirs(run)[-1], _vae())["trainer"]
    assert saved["step"] == (crash_step - 1) // 3 * 3 and saved["batch"] == saved["step"] % 8
    torch.manual_seed(999)  # the resume must not depend on the caller's RNG
    resumed = fit(_vae(), data, cfg, run_dir=run, resume=True)
    _same_weights(straight.model, resumed.model)
    assert _metrics(run) == [
        {**r, "seconds": _metrics(run)[i]["seconds"]} for i, r in enumerate(_metrics(tmp_path / "a"))
    ]
    assert [r["epoch"] for r in _metrics(run)] == [1, 2, 3]


def test_retention_keeps_the_newest_and_the_best(data, tmp_path):
    cfg = TrainConfig(epochs=6, batch_size=32, lr=3e-3, keep_checkpoints=2, progress=False)
    res = fit(_vae(), data, cfg, run_dir=tmp_path / "r")
    best_step = 8 * res.best_epoch
    names = [p.name for p in checkpoint_dirs(tmp_path / "r")]
    expected = sorted({f"step-{s:09d}" for s in (40, 48, best_step)})
    assert names == expected


def test_retention_protects_an_early_best(data, tmp_path, monkeypatch):
    """Validation loss that only gets worse after epoch 1: the epoch-1 checkpoint survives."""
    import vaekit.training.loop as T

    vals = iter([1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(T, "mean_terms", lambda *a, **k: {"loss": next(vals)})
    fit(_vae(), data, TrainConfig(epochs=4, batch_size=32, keep_checkpoints=1, progress=False), run_dir=tmp_path / "r")
    assert [p.name for p in checkpoint_dirs(tmp_path / "r")] == ["step-000000008", "step-000000032"]


def test_sigint_stops_after_the_step_and_resumes_exactly(data, tmp_path, monkeypatch):
    handler_before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    cfg = TrainConfig(**CFG)
    straight = fit(_vae(), data, cfg)
    run = tmp_path / "r"
    with monkeypatch.context() as m:
        import vaekit.training.loop as T

        calls = {"n": 0}
        inner = T.OBJECTIVES["elbo"]

        def objective(*a, **k):
            if torch.is_grad_enabled():
                calls["n"] += 1
                if calls["n"] == 10:
                    os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of step 10
            return inner(*a, **k)

        m.setitem(T.OBJECTIVES, "elbo", objective)
        with pytest.raises(TrainingInterrupted) as info:
            fit(_vae(), data, cfg, run_dir=run)
    assert info.value.exit_code == 130
    assert "SIGINT at epoch 2, step 10" in str(info.value) and f"vaekit train --resume {run}" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is handler_before  # handlers are restored
    saved = load_checkpoint(checkpoint_dirs(run)[-1], _vae())["trainer"]
    assert (saved["step"], saved["batch"], saved["epoch"]) == (10, 2, 1)  # step 10 was finished, then saved
    resumed = fit(_vae(), data, cfg, run_dir=run, resume=True)
    _same_weights(straight.model, resumed.model)
    assert [r["epoch"] for r in _metrics(run)] == [1, 2, 3]


def _inject_logvar_blowup(model, from_call, until_call=None):
    """From the `from_call`-th training forward on, push the encoder's log-variance to 1e4."""
    calls = {"n": 0}
    d = model.latent_dim

    def hook(module, inputs, output):
        calls["n"] += torch.is_grad_enabled()  # count training steps; the diagnosis re-runs the encoder
        if calls["n"] >= from_call and (until_call is None or calls["n"] < until_call):
            output = output.clone()
            output[:, d:] = 1e4
        return output

    model.encoder.register_forward_hook(hook)
    return calls


def test_nan_is_caught_at_once_and_diagnosed(data, tmp_path):
    model = _vae()
    _inject_logvar_blowup(model, from_call=12)
    with pytest.raises(VaekitError) as info:
        fit(model, data, TrainConfig(**CFG), run_dir=tmp_path / "r")
    msg = str(info.value)
    assert msg.startswith("training diverged at epoch 2, step 12: the loss is nan"), msg
    assert "KL term nan" in msg and "encoder log-variance in [1e+04, 1e+04]" in msg
    assert "log-variance ran away" in msg and "train.lr=0.0015" in msg and "--on-nan rollback" in msg
    assert "\n" not in msg
    # Nothing past the last good state was written: the epoch-1 checkpoint is the newest.
    assert [p.name for p in checkpoint_dirs(tmp_path / "r")] == ["step-000000008"]


def test_nan_in_the_gradient_only(data):
    model = _vae()
    model.decoder.net[-1].weight.register_hook(lambda g: torch.full_like(g, float("nan")))
    with pytest.raises(
        VaekitError, match=r"step 1: the loss is finite but the gradient norm is nan.*a gradient overflowed"
    ):
        fit(model, data, TrainConfig(**CFG))


def test_rollback_halves_the_lr_and_finishes(data, tmp_path, capsys):
    model = _vae()
    calls = _inject_logvar_blowup(model, from_call=12, until_call=13)  # one bad step in epoch 2
    cfg = TrainConfig(**{**CFG, "schedule": "constant"}, on_nan="rollback")
    res = fit(model, data, cfg, run_dir=tmp_path / "r")
    assert [r["epoch"] for r in res.history] == [1, 2, 3]
    assert [r["lr"] for r in res.history] == [3e-3, 1.5e-3, 1.5e-3]  # halved after the rollback to epoch 1's end
    assert calls["n"] == 24 + 4  # steps 9-12 ran (12 went bad), then epoch 2 was redone from step 8
    assert "non-finite loss or gradient at step 12; rolled back to step 8" in capsys.readouterr().err
    saved = load_checkpoint(checkpoint_dirs(tmp_path / "r")[-1], _vae())["trainer"]
    assert saved["rollbacks"] == 1 and saved["lr_scale"] == 0.5


def test_rollback_gives_up_after_the_limit(data):
    model = _vae()
    _inject_logvar_blowup(model, from_call=3)  # every step from the 3rd on is bad
    cfg = TrainConfig(**CFG, on_nan="rollback", max_rollbacks=2)
    with pytest.raises(VaekitError, match=r"gave up after 2 rollbacks"):
        fit(model, data, cfg)  # works without a run directory: the last good state is kept in memory


def test_torn_directory_swap_is_recovered(tmp_path):
    model = _vae()
    save_pretrained(model, tmp_path / "m")
    os.replace(tmp_path / "m", tmp_path / ".m.old")  # killed between the two renames of a replacement
    _same_weights(load(tmp_path / "m"), model)  # a reader reads the previous version and renames nothing
    assert not (tmp_path / "m").exists()
    save_pretrained(
        build_model(ModelConfig(name="vae", latent_dim=4, hidden=[32]), (1, 8, 8)), tmp_path / "m"
    )  # the next writer completes the swap first, then replaces
    assert load(tmp_path / "m").latent_dim == 4 and not (tmp_path / ".m.old").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_damaged_and_newer_training_checkpoints_are_refused(data, tmp_path):
    run = tmp_path / "r"
    fit(_vae(), data, TrainConfig(epochs=1, batch_size=32, progress=False), run_dir=run)
    (ck,) = checkpoint_dirs(run)
    meta = json.loads((ck / "training.json").read_text())
    (ck / "training.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(VaekitError, match="has format 99; this vaekit reads up to 2: upgrade vaekit"):
        fit(_vae(), data, TrainConfig(epochs=2, batch_size=32, progress=False), run_dir=run, resume=True)
    (ck / "training.json").write_text(json.dumps(meta))
    raw = (ck / "state.safetensors").read_bytes()
    (ck / "state.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VaekitError, match="cannot read weights .*state.safetensors"):
        fit(_vae(), data, TrainConfig(epochs=2, batch_size=32, progress=False), run_dir=run, resume=True)
    (ck / "state.safetensors").write_bytes(raw)
    with pytest.raises(VaekitError, match="does not match the run's model config"):
        load_checkpoint(ck, build_model(ModelConfig(name="vae", latent_dim=4, hidden=[32]), (1, 8, 8)))


def test_second_writer_is_refused_naming_the_holder(tmp_path, images_npz, capsys):
    from vaekit.cli import main

    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from vaekit.training.lock import RunLock
        RunLock({str(run)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(
            ["train", "--set", f"data.name={images_npz}", "--set", "train.epochs=1", "--out", str(run), "--quiet"]
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0
        assert f"run directory '{run}' is in use by process {holder.pid} on " in err
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the killed holder's lock: the directory can be used again.
    with RunLock(run):
        pass
    assert [p.name for p in run.iterdir()] == [".lock"]


def test_lock_is_reentrant_and_released(tmp_path):
    a = RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # the same process may nest
    a.release()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from vaekit.training.lock import RunLock; RunLock({str(tmp_path)!r}).acquire(); print('ok')",
        ],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_cpu_training_is_deterministic(data):
    cfg = TrainConfig(**CFG)
    _same_weights(fit(_vae(), data, cfg).model, fit(_vae(), data, cfg).model)


def test_a_run_without_a_model_yet_says_to_resume(data, tmp_path, monkeypatch, capsys):
    from vaekit.cli import main

    run = tmp_path / "r"
    with monkeypatch.context() as m:
        _crash_at_step(m, 5)
        with pytest.raises(_Boom):
            fit(_vae(), data, TrainConfig(**CFG, checkpoint_every=2), run_dir=run)
    (run / "config.json").write_text("{}")
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 2
    assert (
        f"has no model yet (no epoch has finished); continue it with 'vaekit train --resume {run}'"
        in capsys.readouterr().err
    )


def test_on_nan_flag_reaches_the_config(tmp_path, images_npz, capsys):
    from vaekit.cli import main

    run = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--set",
                f"data.name={images_npz}",
                "--set",
                "train.epochs=1",
                "--set",
                "train.eval_k=5",
                "--on-nan",
                "rollback",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((run / "config.json").read_text())["train"]["on_nan"] == "rollback"
    assert main(["train", "--on-nan", "ignore", "--out", str(tmp_path / "x")]) == 2
    assert "argument --on-nan: invalid choice: 'ignore'" in capsys.readouterr().err


def test_written_files_get_the_usual_permissions(data, tmp_path):
    run = tmp_path / "r"
    fit(_vae(), data, TrainConfig(epochs=1, batch_size=32, progress=False), run_dir=run)
    mask = os.umask(0)
    os.umask(mask)
    assert (run / "model").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (run / "metrics.jsonl").stat().st_mode & 0o777 == 0o666 & ~mask
    assert checkpoint_dirs(run)[0].stat().st_mode & 0o777 == 0o777 & ~mask


RECOVERY_CFG = dict(epochs=3, batch_size=32, lr=3e-3, schedule="cosine", ema=0.9, progress=False)


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


def test_resume_falls_back_past_damaged_checkpoints(data, tmp_path, monkeypatch, capsys):
    cfg = TrainConfig(**RECOVERY_CFG, checkpoint_every=3, keep_checkpoints=5)
    straight = fit(_vae(), data, cfg)
    run = tmp_path / "r"
    with monkeypatch.context() as m:
        _crash_at_step(m, 17, KeyboardInterrupt)  # as abrupt as a kill, for what is on disk
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
    cfg = TrainConfig(**RECOVERY_CFG)
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
            fit(_vae(), data, TrainConfig(**RECOVERY_CFG), run_dir=run)
    assert "at epoch 2, step 10;" in str(info.value)
    capsys.readouterr()
    fit(_vae(), data, TrainConfig(**RECOVERY_CFG), run_dir=run, resume=True)
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
