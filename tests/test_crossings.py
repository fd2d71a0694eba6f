"""The crashes the issue-27 audit found where two features meet, each reproduced as the audit did
and failing on the code before the fix: the tutorial's PCA with fitted samplers, labels a
conditional model does not know, --out names that are links or files, a 5000-digit integer in a
model directory, images Pillow has no mode for, an IDX header larger than memory, absurd depth,
litter left by kill -9, and refusals that printed more than one line. (The float64 VQ-VAE is
`test_contract.test_the_contract_holds_in_float64`; every verb on every kind is `test_verbs`.)"""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from conftest import digit_like, train_small_run
from test_hostile_corpus import _assert_one_line as _one_line
from vaekit.cli import main


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("crossings")
    x, y = digit_like(200, size=8)
    np.savez(root / "d.npz", x=x, y=y % 3)
    np.savez(root / "d6.npz", x=x, y=y % 6)
    return root


@pytest.fixture(scope="module")
def pca_run(digits):
    from vaekit.cli import main

    out = digits / "pca"
    assert (
        main(
            [
                "train",
                "--quiet",
                "--out",
                str(out),
                "--set",
                f"data.name={digits / 'd.npz'}",
                "--set",
                "model.name=pca",
                "--set",
                "model.latent_dim=3",
                "--set",
                "data.val_size=0",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def cvae_run(digits):
    return train_small_run(
        digits / "d.npz", digits / "cvae", latent_dim=2, hidden=16, extra=("--set", "model.conditional=true")
    )


# 1. PCA, the tutorial's step 1, with every fitted sampler ------------------------------------


@pytest.mark.parametrize("sampler", ["gaussian", "gmm:2", "two-stage"])
def test_pca_samples_from_a_fitted_sampler(pca_run, tmp_path, capsys, sampler):
    """A Gaussian fitted to PCA's codes is exactly PPCA's generative story: it must sample."""
    import vaekit
    from vaekit.models.samplers import draw_images, sampler_for

    assert main(["sample", str(pca_run), "--sampler", sampler, "--n", "6", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    pca = vaekit.load(pca_run / "model")
    assert pca.device == torch.device("cpu") and pca.dtype == torch.float32  # the contract's answer, no parameters()
    fitted = sampler_for(pca, sampler, lambda: None, pca_run)  # saved by the CLI above, loaded here
    images = draw_images(pca, fitted, 5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 8, 8) and images.dtype == torch.float32 and torch.isfinite(images).all()


def test_the_gaussian_sampler_of_pca_has_the_codes_moments(pca_run):
    """PCA codes are uncorrelated with variances l_1..l_q: the fitted Gaussian must say so."""
    from vaekit.data.prepared import prepare
    from vaekit.models.samplers import fit_sampler
    from vaekit.runs import load_run

    pca, cfg = load_run(pca_run)
    x = prepare(cfg.data).x_train
    g = fit_sampler(pca, x, "gaussian")
    cov = g.scale_tril[0] @ g.scale_tril[0].T
    n = len(x)
    assert torch.allclose(cov.diagonal(), pca.explained_variance_.float() * 1.0, rtol=1e-3)
    assert torch.allclose(cov - torch.diag(cov.diagonal()), torch.zeros_like(cov), atol=1e-4 * float(cov.max()))
    assert torch.allclose(g.loc[0], torch.zeros(3), atol=1e-4) and n > 3


def test_pca_explores_and_evaluates_generation(pca_run, digits, tmp_path, capsys):
    assert (
        main(
            ["features", "train", str(digits / "d.npz"), "--out", str(tmp_path / "f"), "--epochs", "1", "--width", "8"]
        )
        == 0
    )
    assert main(["explore", str(pca_run), "--out", str(tmp_path / "page"), "--points", "50"]) == 0
    assert '"sampler":{"name":"gaussian","kind":"mixture"' in (tmp_path / "page" / "index.html").read_text()
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(pca_run),
                "--generation",
                "--sampler",
                "gmm:2",
                "--n",
                "30",
                "--json",
                "--features",
                str(tmp_path / "f"),
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["sampler"] == "gmm:2" and res["model"]["frechet_distance"]["value"] >= 0


# 3. labels the conditional model does not know ----------------------------------------------


@pytest.mark.parametrize("verb", ["explore", "reconstruct", "traverse", "evaluate"])
def test_unknown_labels_are_refused_wherever_data_is_named(cvae_run, digits, tmp_path, capsys, verb):
    argv = [verb, str(cvae_run), "--data", str(digits / "d6.npz")]
    argv += ["--out", str(tmp_path / ("o" if verb == "explore" else "o.png"))] if verb != "evaluate" else []
    code = main(argv)
    _one_line(code, capsys.readouterr().err, "has labels 0 to 5, but the conditional model")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.png").exists()


def test_the_explorer_api_refuses_labels_beyond_the_model(cvae_run, tmp_path):
    import vaekit
    from vaekit.errors import VaekitError
    from vaekit.explorer.page import explore

    model = vaekit.load(cvae_run / "model")
    x = torch.rand(10, 1, 8, 8)
    with pytest.raises(VaekitError, match="this conditional model knows labels 0..2"):
        explore(model, x, tmp_path / "p", y=torch.full((10,), -1))
    assert not (tmp_path / "p").exists()


# 4. --out that is a dangling link or a file -------------------------------------------------


def test_explore_into_a_dangling_link_and_export_onto_a_file(cvae_run, tmp_path, capsys):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    _one_line(
        main(["explore", str(cvae_run), "--out", str(tmp_path / "dangling")]),
        capsys.readouterr().err,
        "is a symbolic link to",
    )
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "file").write_text("mine")
    _one_line(
        main(["export", str(cvae_run), "--out", str(tmp_path / "file")]),
        capsys.readouterr().err,
        "exists and is not a folder",
    )
    _one_line(
        main(["export", str(cvae_run), "--out", str(tmp_path / "file" / "sub")]),
        capsys.readouterr().err,
        "is not a folder",
    )
    assert (tmp_path / "file").read_text() == "mine"
    _one_line(
        main(["features", "train", str(tmp_path / "x.npz"), "--out", str(tmp_path / "dangling")]),
        capsys.readouterr().err,
        "is a symbolic link to",
    )


# 5. a 5000-digit integer in a model directory's config.json ---------------------------------


@pytest.mark.parametrize("where", ["model", "run"])
def test_a_5000_digit_integer_in_a_config_json_is_one_line(cvae_run, tmp_path, capsys, where):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(cvae_run, run)
    path = run / "model" / "config.json" if where == "model" else run / "config.json"
    text = path.read_text()
    path.write_text(text.replace('"latent_dim": 2', '"latent_dim": ' + "9" * 5000, 1))
    assert path.read_text() != text
    _one_line(main(["evaluate", str(run), "--k", "2"]), capsys.readouterr().err, "config.json")


# 6. images whose channel count has no picture format ----------------------------------------


@pytest.mark.parametrize("shape", [(40, 5, 8, 8), (40, 2, 8, 8), (40, 8, 8, 28)])
def test_images_of_any_channel_count_are_drawn(tmp_path, capsys, shape):
    """(N, 8, 8, 28) reads as 28 channels: Pillow's mode table has no (1, 1, 28) entry."""
    from PIL import Image

    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8))
    out = train_small_run(tmp_path / "x.npy", tmp_path / "r", hidden=8)
    for name in ("samples.png", "reconstructions.png"):
        assert Image.open(out / name).mode == "L"
    assert main(["sample", str(out), "--out", str(tmp_path / "s.png"), "--n", "4"]) == 0


def test_a_grey_mean_is_what_is_drawn():
    from vaekit.explorer.pictures import _to_uint8

    x = torch.zeros(1, 5, 2, 2)
    x[0, 0] = 1.0  # one channel of five at full: mean 0.2
    assert (_to_uint8(x) == round(0.2 * 255)).all() and _to_uint8(x).shape == (1, 2, 2, 1)
    rgb = torch.rand(2, 3, 2, 2)
    assert _to_uint8(rgb).shape == (2, 2, 2, 3)


# 7. an IDX header that declares more than memory holds --------------------------------------


@pytest.fixture(scope="module")
def big_idx(tmp_path_factory):
    """An IDX file declaring and holding 1 GiB (zeros): 16 gzip members of 64 MiB, 1 MB on disk."""
    import gzip
    import struct

    f = tmp_path_factory.mktemp("idx") / "big-idx1-ubyte.gz"
    zeros = gzip.compress(bytes(1 << 26), compresslevel=9)  # members concatenate into one gzip stream
    with open(f, "wb") as out:
        out.write(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 16 << 26)))
        for _ in range(16):
            out.write(zeros)
    return f


@pytest.mark.parametrize("argv", [["data", "info", "{f}"], ["train", "--set", "data.name={f}", "--out", "{tmp}/r"]])
def test_an_idx_larger_than_memory_is_one_line(big_idx, tmp_path, argv):
    """1 GiB declared and present under a 700 MB address-space limit (ulimit -v)."""
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (700_000_000,) * 2); "
        "from vaekit.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [a.format(f=big_idx, tmp=tmp_path) for a in argv]
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    _one_line(p.returncode, p.stderr, "big-idx1-ubyte.gz")
    assert "memory" in p.stderr and not (tmp_path / "r").exists()


def test_idx_reads_follow_the_file_not_its_header():
    import io

    from vaekit.data.downloads import _read_at_most

    assert _read_at_most(io.BytesIO(b"abc"), 10**12) == b"abc"  # a read(10**12) would allocate a terabyte first
    assert _read_at_most(io.BytesIO(bytes(100)), 40, chunk=16) == bytes(40)


# 8. absurd depth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets, fragment",
    [
        (["model.hidden=[" + ",".join(["8"] * 3000) + "]"], "'model.hidden': 3000 layers; at most 128"),
        (["model.arch=resnet", "model.depth=100000"], "'model.depth': 100000 blocks per stage"),
        (["model.name=hvae", "model.latent_dims=[" + ",".join(["1"] * 500) + "]"], "500 stochastic layers"),
        (["model.posterior=iaf", "model.flow_steps=1000000"], "1000000 flow steps"),
        (["model.channels=[" + ",".join(["4"] * 200) + "]", "model.arch=conv"], "200 stages"),
    ],
)
def test_absurd_depth_is_refused_before_anything_is_built(tmp_path, capsys, sets, fragment):
    """Before the fix these built thousands of layers for minutes: an alarm turns a hang into a failure."""

    def hung(signum, frame):
        raise TimeoutError("no answer within 20 s")

    argv = ["train", "--out", str(tmp_path / "r")]
    for s in sets:
        argv += ["--set", s]
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        start = time.perf_counter()
        _one_line(main(argv), capsys.readouterr().err, fragment)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - start < 10 and not (tmp_path / "r").exists()


def test_the_deepest_allowed_model_still_builds():
    from vaekit.config import MAX_LAYERS, ModelConfig
    from vaekit.models import build_model

    m = build_model(ModelConfig(name="ae", hidden=[4] * MAX_LAYERS, latent_dim=2), (6,))
    assert sum(isinstance(mod, torch.nn.Linear) for mod in m.modules()) == 2 * (MAX_LAYERS + 1)


# 9. litter after kill -9 -------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from vaekit.training.checkpoints import atomic_dir, atomic_file
    target, kind = Path(sys.argv[1]), sys.argv[2]
    with (atomic_file(target) if kind == "file" else atomic_dir(target)) as tmp:
        (tmp / "half" if kind == "dir" else tmp).write_bytes(b"half") if kind == "dir" else tmp.write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed_writer(target, kind: str) -> None:
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), kind], capture_output=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr


def test_export_removes_what_a_killed_export_left(cvae_run, tmp_path, capsys):
    out = tmp_path / "onnx"
    out.mkdir()
    _killed_writer(out / "decoder.onnx", "file")
    litter = [p for p in out.iterdir() if p.name.startswith(".decoder.")]
    assert len(litter) == 1 and litter[0].suffix == ".onnx"  # what kill -9 leaves
    assert main(["export", str(cvae_run), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx"]


def test_features_train_removes_what_a_killed_one_left(digits, tmp_path, capsys):
    out = tmp_path / "feat"
    _killed_writer(out, "dir")
    assert [p.name.startswith(".feat.") and p.name.endswith(".tmp") for p in tmp_path.iterdir()] == [True]
    assert main(["features", "train", str(digits / "d.npz"), "--out", str(out), "--epochs", "1", "--width", "8"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feat"]


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    """Only a dead process's files go: a concurrent writer (here, this process) keeps its own."""
    from vaekit.training.checkpoints import atomic_file

    with atomic_file(tmp_path / "a.png") as mine:
        mine.write_bytes(b"x")
        with atomic_file(tmp_path / "a.png") as other:  # a second writer of the same file, while the first is live
            other.write_bytes(b"y")
            assert mine.exists()
    assert (tmp_path / "a.png").read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == ["a.png"]


# 10. a refusal is one line, late in training too, and after failed mirrors -------------------


def test_a_full_disk_late_in_training_is_one_line_on_stderr(digits, tmp_path, capsys, monkeypatch):
    """The epoch's summary is a result (stdout); stderr holds only the error."""
    import vaekit.training.state as trainer

    calls = {"n": 0}
    real = trainer.Trainer.checkpoint

    def checkpoint(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "checkpoints"))
        return real(self, *a, **k)

    monkeypatch.setattr(trainer.Trainer, "checkpoint", checkpoint)
    argv = [
        "train",
        "--out",
        str(tmp_path / "r"),
        "--set",
        f"data.name={digits / 'd.npz'}",
        "--set",
        "train.epochs=3",
        "--set",
        "model.hidden=[8]",
        "--set",
        "data.val_size=0",
        "--set",
        "train.eval_k=0",
    ]
    code = main(argv)
    out, err = capsys.readouterr()
    _one_line(code, err, "No space left on device")
    assert "earlier checkpoints are intact" in err and "epoch 1: train_loss=" in out


def test_failed_mirrors_are_named_in_the_one_line(tmp_path, capsys, monkeypatch):
    import urllib.error

    import vaekit.data.named as datasets

    def unreachable(url, dest, progress):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(datasets, "_download", unreachable)
    monkeypatch.setenv("HOME", str(tmp_path))  # no Keras cache to find
    _one_line(main(["data", "fetch", "fashion-mnist"]), capsys.readouterr().err, "could not acquire fashion-mnist")
    monkeypatch.setattr(datasets, "_download", unreachable)
    code = main(["data", "fetch", "cifar10"])
    err = capsys.readouterr().err
    _one_line(code, err, "(tried: cifar10: ")
    assert err.count("Name or service not known") == len(datasets.CIFAR10.urls)


def test_debug_goes_anywhere(capsys):
    """--debug after the command's own arguments shows the traceback instead of 'unrecognized arguments'."""
    from vaekit.errors import VaekitError

    with pytest.raises(VaekitError, match="neither a dataset name"):
        main(["data", "info", "/nonexistent/x.npy", "--debug"])
