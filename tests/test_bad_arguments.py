"""Command-line arguments that vaekit refuses, for every verb: outputs it cannot write, data of
another shape or labels a model does not know, seeds, names and limits beyond reason. One line,
exit code 2, and `--debug` for the traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import digit_like
from refusals import RNG, SMALL, X, assert_clean_failure, assert_one_line
from vaekit.cli import main


def test_unwritable_and_impossible_output_directories(tmp_path, images_npz, capsys):
    (tmp_path / "file").write_text("x")
    for out, fragment in ((tmp_path / "file" / "run", "is not a folder"), ("/proc/vaekit-test/run", "is not writable")):
        code = main(["train", "--set", f"data.name={images_npz}", "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    if os.geteuid() != 0:  # permission bits do not stop root
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            code = main(["train", "--set", f"data.name={images_npz}", "--out", str(ro / "run"), "--quiet"])
            assert_clean_failure(code, capsys.readouterr().err, "is not writable", ro / "run")
        finally:
            ro.chmod(0o700)


@pytest.mark.parametrize("verb", ["evaluate", "reconstruct", "interpolate"])
def test_data_of_another_shape_is_refused_by_every_verb(trained, tmp_path, capsys, verb):
    np.save(tmp_path / "wide.npy", RNG.random((30, 5)).astype(np.float32))
    argv = [verb, str(trained / "run"), "--data", str(tmp_path / "wide.npy")]
    if verb != "evaluate":
        argv += ["--out", str(tmp_path / "o.npy")]
    assert_one_line(main(argv), capsys.readouterr().err, "does not match the model's input shape")
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("seed", ["1180591620717411303424", "-1", "nan", "1e9"])
def test_sample_seeds_must_fit_a_generator(trained, tmp_path, capsys, seed):
    assert_one_line(
        main(["sample", str(trained / "run"), "--seed", seed, "--out", str(tmp_path / "s.npy")]),
        capsys.readouterr().err,
        "seed",
    )


def test_a_name_too_long_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / ("x" * 300)
    assert_one_line(
        main(["train", "--set", f"data.name={tmp_path / 'x.npy'}", *SMALL, "--out", str(out)]),
        capsys.readouterr().err,
        "too long",
    )


def test_a_refusal_is_one_line_even_when_a_library_warned_first(tmp_path):
    """In a real process (pytest would capture the warning itself): a library warns, then the input
    is refused; stderr holds the refusal alone."""

    np.save(tmp_path / "big.npy", np.full((50, 4), 1e300))
    driver = textwrap.dedent(f"""
        import sys, warnings
        import vaekit.data.prepared as D
        real = D.read_raw
        def noisy(cfg):
            warnings.warn("a library's warning about this file", UserWarning)
            return real(cfg)
        D.read_raw = noisy
        from vaekit.cli import main
        sys.exit(main(["train", "--set", "data.name={tmp_path / "big.npy"}", "--out", "{tmp_path / "r"}"]))
    """)
    p = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True)
    assert_one_line(p.returncode, p.stderr, "overflow the float32 arithmetic")


@pytest.mark.slow  # a fresh interpreter under ulimit -f, about 5 s
def test_a_file_size_limit_is_one_line_and_leaves_nothing(trained, tmp_path):
    """EFBIG (ulimit -f) while writing the weights of a run: one line, exit 2, no half file."""
    import resource
    import subprocess

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    out = tmp_path / "r"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "vaekit",
            "train",
            "--set",
            f"data.name={trained / 'x.npy'}",
            *SMALL,
            "--set",
            "model.hidden=[256]",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
    )
    assert_one_line(p.returncode, p.stderr, "File too large")
    assert not out.exists()


# --- the arguments of explore, export, traverse, sample and features train ----------------

ARGUMENTS = [
    (["explore", "{run}", "--points", "0"], "--points 0"),
    (["explore", "{run}", "--points", "-3"], "--points -3"),
    (["explore", "{run}", "--points", "100000000"], "--points 100000000"),
    (["explore", "{run}", "--points", "1"], "--points 1"),
    (["explore", "{run}", "--sampler", "gmm:0"], "--sampler 'gmm:0'"),
    (["explore", "{run}", "--sampler", "gmm:1001"], "--sampler 'gmm:1001'"),
    (["explore", "{run}", "--sampler", "gmm:two"], "--sampler 'gmm:two'"),
    (["explore", "{run}", "--sampler", "../../etc"], "--sampler '../../etc'"),
    (["explore", "{run}", "--sampler", "prior"], "has no prior to sample from"),
    (["explore", "{run}", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["explore", "{run}", "--out", "{tmp}/file/page"], "is not a folder"),
    (["explore", "{run}", "--out", "{tmp}/" + "p" * 300], "File name too long"),
    (["explore", "{run}", "--data", "{tmp}/missing.npz"], "neither a dataset name"),
    (["explore", "{run}", "--data", "{tmp}/vectors.npz"], "does not match the model's input shape"),
    (["explore", "{tmp}/no-run"], "does not exist"),
    (["export", "{run}", "--part", "head"], "invalid choice: 'head'"),
    (["export", "{run}", "--format", "tflite"], "invalid choice: 'tflite'"),
    (["export", "{run}", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["export", "{run}", "--out", "{tmp}/dangling"], "is a symbolic link to"),
    (["export", "{tmp}/no-run"], "does not exist"),
    (["export", "{tmp}/file"], "does not exist"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "a,b"], "--dims 'a,b'"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "9"], "dimension"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "-1"], "dimension"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", ""], "--dims"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--dims", "0," + "9" * 30], "dimension"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--steps", "0"], "--steps"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--steps", "1000000"], "--steps"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "nan"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "inf"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "-1"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "0"], "--span"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--image", "-1"], "--image"),
    (["traverse", "{run}", "--out", "{tmp}/t.png", "--image", "1000000"], "--image"),
    (["traverse", "{run}", "--out", "{tmp}/t.jpg"], "written as .png"),
    (["traverse", "{run}", "--out", "{tmp}/nowhere/t.png"], "does not exist"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", "gmm:-1"], "--sampler 'gmm:-1'"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", "two_stage"], "--sampler 'two_stage'"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", ""], "--sampler ''"),
    (["sample", "{run}", "--out", "{tmp}/s.png", "--sampler", "gmm:1000"], "needs more than 1000 examples"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--epochs", "0"], "--epochs 0"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--width", "0"], "--width 0"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--width", "100000"], "--width 100000"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--lr", "0"], "--lr 0"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--lr", "nan"], "--lr nan"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--lr", "3"], "--lr 3"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/f", "--seed", "-1"], "seed -1"),
    (["features", "train", "{tmp}/vectors.npz", "--out", "{tmp}/f"], "labels"),
    (["features", "train", "{tmp}/missing.npz", "--out", "{tmp}/f"], "neither a dataset name"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/file"], "exists and is not a folder"),
    (["features", "train", "{tmp}/d.npz", "--out", "{tmp}/full"], "is not an empty folder"),
    (["features", "train", "shapes", "--out", "{tmp}/f"], "held in memory"),
    (["evaluate", "{run}", "--generation", "--features", "{tmp}/d.npz"], "d.npz"),
    (["evaluate", "{run}", "--generation", "--features", "{tmp}/full"], "full"),
    (["evaluate", "{run}", "--generation", "--sampler", "gmm:x"], "--sampler 'gmm:x'"),
    (["evaluate", "{run}", "--disentanglement", "--fraction", "0"], "--fraction 0"),
    (["evaluate", "{run}", "--disentanglement", "--fraction", "nan"], "--fraction nan"),
    (["evaluate", "{run}", "--disentanglement", "--fraction", "2"], "--fraction 2"),
    (["evaluate", "{run}", "--disentanglement"], "has no known generative factors"),
]


@pytest.mark.parametrize("argv, fragment", ARGUMENTS, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None)
def test_bad_arguments_of_the_page_export_traverse_and_feature_verbs(argv, fragment, ae_run, tmp_path, capsys):
    x, y = digit_like(60, size=8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.savez(tmp_path / "vectors.npz", x=np.random.default_rng(0).random((30, 5)).astype(np.float32))
    (tmp_path / "file").write_text("mine")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = set(tmp_path.iterdir())
    args = [a.format(run=ae_run, tmp=tmp_path) for a in argv]
    assert_one_line(main(args), capsys.readouterr().err, fragment)
    assert set(tmp_path.iterdir()) == before and (tmp_path / "file").read_text() == "mine"
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep"]


# 3. labels the conditional model does not know ----------------------------------------------


@pytest.mark.parametrize("verb", ["explore", "reconstruct", "traverse", "evaluate"])
def test_unknown_labels_are_refused_wherever_data_is_named(cvae_run, digits, tmp_path, capsys, verb):
    argv = [verb, str(cvae_run), "--data", str(digits / "d6.npz")]
    argv += ["--out", str(tmp_path / ("o" if verb == "explore" else "o.png"))] if verb != "evaluate" else []
    code = main(argv)
    assert_one_line(code, capsys.readouterr().err, "has labels 0 to 5, but the conditional model")
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
    assert_one_line(
        main(["explore", str(cvae_run), "--out", str(tmp_path / "dangling")]),
        capsys.readouterr().err,
        "is a symbolic link to",
    )
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "file").write_text("mine")
    assert_one_line(
        main(["export", str(cvae_run), "--out", str(tmp_path / "file")]),
        capsys.readouterr().err,
        "exists and is not a folder",
    )
    assert_one_line(
        main(["export", str(cvae_run), "--out", str(tmp_path / "file" / "sub")]),
        capsys.readouterr().err,
        "is not a folder",
    )
    assert (tmp_path / "file").read_text() == "mine"
    assert_one_line(
        main(["features", "train", str(tmp_path / "x.npz"), "--out", str(tmp_path / "dangling")]),
        capsys.readouterr().err,
        "is a symbolic link to",
    )


def test_debug_goes_anywhere(capsys):
    """--debug after the command's own arguments shows the traceback instead of 'unrecognized arguments'."""
    from vaekit.errors import VaekitError

    with pytest.raises(VaekitError, match="neither a dataset name"):
        main(["data", "info", "/nonexistent/x.npy", "--debug"])
