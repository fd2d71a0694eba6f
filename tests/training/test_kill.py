"""SIGKILL a real training process at chosen points, resume it with `vaekit train --resume`, and
check that it ends bit-identical to an uninterrupted run, with a gap-free metrics history.

The kill points are reached by wrapping vaekit functions in a driver script (the process then
kills itself with SIGKILL, which cannot be caught), so they are exact and repeatable."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import digit_like

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    import vaekit.training.checkpoints as C
    import vaekit.training.loop as T
    from vaekit.cli import main

    mode, argv = sys.argv[1], sys.argv[2:]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    count = {"n": 0}

    def counting(fn, at, before=True):
        def wrapper(*a, **k):
            count["n"] += 1
            if before and count["n"] == at:
                die()
            out = fn(*a, **k)
            if not before and count["n"] == at:
                die()
            return out
        return wrapper

    if mode == "mid_epoch":  # in the middle of training step 13 (epoch 2), after its forward pass
        inner = T.OBJECTIVES["elbo"]
        def objective(*a, **k):
            if torch.is_grad_enabled():
                count["n"] += 1
                if count["n"] == 13:
                    inner(*a, **k)
                    die()
            return inner(*a, **k)
        T.OBJECTIVES["elbo"] = objective
    elif mode == "validation":  # inside epoch 2's validation pass
        T.mean_terms = counting(T.mean_terms, 2)
    elif mode == "checkpoint_write":  # half-way through writing a checkpoint's second file
        inner = C.save_tensors
        def save(tensors, path):
            count["n"] += 1
            if count["n"] == 4:  # step-3 (calls 1, 2), step-6 (3, 4): state.safetensors of step 6
                from safetensors.torch import save_file
                save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
                raw = open(path, "rb").read()
                open(path, "wb").write(raw[: len(raw) // 2])  # torn
                die()
            inner(tensors, path)
        C.save_tensors = save
    elif mode == "first_checkpoint":  # half-way through the very first checkpoint: nothing to resume from
        inner = C.save_tensors
        def save(tensors, path):
            count["n"] += 1
            if count["n"] == 2:  # step-3's state.safetensors
                die()
            inner(tensors, path)
        C.save_tensors = save
    elif mode == "pruning":  # half-way through deleting the first checkpoint that falls out of the kept ones
        real = C.shutil.rmtree
        def rmtree(path, *a, **k):
            if str(path).endswith(".del"):
                os.remove(os.path.join(path, "model.safetensors"))
                die()
            return real(path, *a, **k)
        C.shutil.rmtree = rmtree
    elif mode == "last_evaluation":  # inside the test-set evaluation after the last epoch
        import vaekit.metrics.evaluation as E
        E.evaluate = counting(E.evaluate, 1)
    elif mode == "model_swap":  # between the two renames that replace model/ with a better one
        real = os.replace
        def replace(src, dst):
            real(src, dst)
            if str(dst).endswith(".model.old"):
                die()
        C.os.replace = replace
    sys.exit(main(argv))
""")


def _run(args, mode="none", check=True):
    proc = subprocess.run([sys.executable, "-c", DRIVER, mode, *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    x, y = digit_like(300)
    np.savez(root / "digits.npz", x=x, y=y)
    cfg = root / "cfg.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        [data]
        name = "{root / "digits.npz"}"
        binarize = "dynamic"
        val_size = 40
        [model]
        name = "vae"
        latent_dim = 3
        hidden = [32]
        dropout = 0.1
        [train]
        epochs = 4
        batch_size = 32
        lr = 3e-3
        schedule = "cosine"
        kl_warmup_epochs = 1
        ema = 0.9
        checkpoint_every = 3
        eval_k = 20
        progress = false
    """)
    )
    straight = root / "straight"
    _run(["train", str(cfg), "--out", str(straight)])
    return root, cfg, straight


def _final(run):
    last = sorted((run / "checkpoints").iterdir())[-1]
    return load_file(str(last / "model.safetensors")), load_file(str(run / "model" / "model.safetensors"))


def _history(run):
    return [
        {k: v for k, v in json.loads(s).items() if k != "seconds"}
        for s in (run / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.mark.parametrize(
    "mode",
    ["mid_epoch", "validation", "checkpoint_write", "model_swap", "first_checkpoint", "pruning", "last_evaluation"],
)
def test_sigkill_then_resume_equals_an_uninterrupted_run(setup, mode):
    root, cfg, straight = setup
    run = root / mode
    killed = _run(["train", str(cfg), "--out", str(run)], mode=mode, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run / "eval.json").exists()  # it really died before the end
    resumed = _run(["train", "--resume", str(run)])
    if mode == "first_checkpoint":
        assert "has no checkpoint yet: training it from the beginning" in resumed.stderr
    else:
        assert "vaekit: resuming at " in resumed.stdout  # a report, not a warning: stderr stays for errors
    (w_a, best_a), (w_b, best_b) = _final(straight), _final(run)
    assert w_a.keys() == w_b.keys() and best_a.keys() == best_b.keys()
    for k in w_a:
        assert np.array_equal(w_a[k], w_b[k]), k
    for k in best_a:
        assert np.array_equal(best_a[k], best_b[k]), k
    assert _history(run) == _history(straight)  # epochs 1..4, no gaps, no duplicates, same numbers
    assert [r["epoch"] for r in _history(run)] == [1, 2, 3, 4]
    assert json.loads((run / "eval.json").read_text()) == json.loads((straight / "eval.json").read_text())
    leftovers = [
        p.name for d in (run, run / "checkpoints") for p in d.iterdir() if p.name.endswith((".tmp", ".old", ".del"))
    ]
    assert leftovers == []


def test_kill_during_a_checkpoint_write_leaves_the_previous_one_loadable(setup):
    import torch

    from vaekit.config import ModelConfig
    from vaekit.models import build_model
    from vaekit.training.checkpoints import checkpoint_dirs, load_checkpoint

    root, cfg, _ = setup
    run = root / "torn"
    assert (
        _run(["train", str(cfg), "--out", str(run)], mode="checkpoint_write", check=False).returncode == -signal.SIGKILL
    )
    # The torn write sits in a hidden temporary directory; the complete checkpoint before it is intact.
    assert [p.name for p in checkpoint_dirs(run)] == ["step-000000003"]
    assert any(p.name.startswith(".step-000000006.") for p in (run / "checkpoints").iterdir())
    model = build_model(ModelConfig(name="vae", latent_dim=3, hidden=[32], dropout=0.1), (1, 8, 8))
    state = load_checkpoint(checkpoint_dirs(run)[0], model)
    assert state["trainer"]["step"] == 3 and all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_with_a_resume_hint(setup, sig, code):
    root, cfg, straight = setup
    run = root / f"sig{code}"
    slow = textwrap.dedent("""
        import time, vaekit.training.loop as T
        inner = T.OBJECTIVES["elbo"]
        def objective(*a, **k):
            time.sleep(0.05)
            return inner(*a, **k)
        T.OBJECTIVES["elbo"] = objective
    """)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DRIVER.replace("mode, argv =", slow + "\nmode, argv ="),
            "none",
            "train",
            str(cfg),
            "--out",
            str(run),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list((run / "checkpoints").glob("step-*")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"vaekit: interrupted by {signal.Signals(sig).name} at epoch ")
    assert last.endswith(f"checkpoint saved; resume with: vaekit train --resume {run}")
    _run(["train", "--resume", str(run)])
    w_a, w_b = _final(straight)[0], _final(run)[0]
    assert all(np.array_equal(w_a[k], w_b[k]) for k in w_a)
    assert [r["epoch"] for r in _history(run)] == [1, 2, 3, 4]
