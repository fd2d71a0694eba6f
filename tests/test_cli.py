import json
import subprocess
import sys

import numpy as np
import pytest

from vaekit.cli import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained(tmp_path, images_npz, capsys):
    cfg = tmp_path / "vae.toml"
    cfg.write_text(
        f'[data]\nname = "{images_npz}"\nval_size = 30\n[model]\nname = "vae"\nlatent_dim = 2\nhidden = [32]\n'
        "[train]\nepochs = 2\nbatch_size = 32\neval_k = 20\nprogress = false\n"
    )
    code, out, err = run(["train", str(cfg), "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    return tmp_path / "run"


def test_train_writes_a_complete_run(trained):
    names = {p.name for p in trained.iterdir()}
    assert {
        "config.json",
        "metrics.jsonl",
        "checkpoints",
        "model",
        "eval.json",
        "curves.png",
        "reconstructions.png",
        "samples.png",
    } <= names
    ev = json.loads((trained / "eval.json").read_text())
    assert ev["log_px"]["unit"] == "nats" and ev["log_px"]["value"] <= ev["elbo"]["value"] + 5.0


def test_no_pictures_writes_the_same_run_without_its_pngs(trained, tmp_path, capsys):
    """--no-pictures (sweeps, scripts, the tests) leaves out the PNGs and nothing else: the same
    config, metrics, weights and evaluation as the run with pictures."""
    code, _, err = run(["train", str(tmp_path / "vae.toml"), "--no-pictures", "--out", str(tmp_path / "bare")], capsys)
    assert code == 0, err
    bare = tmp_path / "bare"
    assert not list(bare.glob("*.png")) and list(trained.glob("*.png"))
    assert {p.name for p in bare.iterdir()} == {p.name for p in trained.iterdir() if p.suffix != ".png"}
    for name in ("eval.json", "config.json"):
        assert (bare / name).read_bytes() == (trained / name).read_bytes(), name
    assert (bare / "model" / "model.safetensors").read_bytes() == (trained / "model" / "model.safetensors").read_bytes()


def test_resume_adds_epochs(trained, capsys):
    code, _, err = run(["train", "--resume", str(trained), "--set", "train.epochs=3"], capsys)
    assert code == 0, err
    assert [json.loads(s)["epoch"] for s in (trained / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_evaluate_sample_reconstruct_interpolate(trained, tmp_path, capsys):
    code, out, _ = run(["evaluate", str(trained), "--k", "10", "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["squared_error"]["reduction"].startswith("per example")
    code, out, _ = run(["evaluate", str(trained), "--k", "10"], capsys)
    assert "log_px" in out and "[nats;" in out
    for cmd in (
        ["sample", "--n", "9"],
        ["reconstruct", "--n", "4"],
        ["interpolate", "--a", "0", "--b", "3", "--mode", "slerp"],
    ):
        target = tmp_path / f"{cmd[0]}.png"
        code, _, err = run([cmd[0], str(trained), "--out", str(target), *cmd[1:]], capsys)
        assert code == 0 and target.stat().st_size > 0, err


def test_pca_and_tabular(tmp_path, capsys):
    rng = np.random.default_rng(0)
    csv = tmp_path / "t.csv"
    csv.write_text("\n".join(",".join(f"{v:.4f}" for v in r) for r in rng.normal(size=(120, 5))))
    code, out, err = run(
        [
            "train",
            "--set",
            f"data.name={csv}",
            "--set",
            "model.name=pca",
            "--set",
            "model.latent_dim=2",
            "--out",
            str(tmp_path / "pca"),
        ],
        capsys,
    )
    assert code == 0, err and "ppca_log_likelihood" in out
    code, out, err = run(
        [
            "train",
            "--set",
            f"data.name={csv}",
            "--set",
            "model.likelihood=gaussian",
            "--set",
            "data.scaling=standard",
            "--set",
            "train.epochs=1",
            "--quiet",
            "--out",
            str(tmp_path / "vae"),
        ],
        capsys,
    )
    assert code == 0, err
    code, _, err = run(["sample", str(tmp_path / "vae"), "--n", "5", "--out", str(tmp_path / "s.csv")], capsys)
    assert code == 0 and len((tmp_path / "s.csv").read_text().splitlines()) == 5


def test_data_info(images_npz, capsys):
    code, out, _ = run(["data", "info", str(images_npz)], capsys)
    assert code == 0 and "train_count  300" in out


def _one_line_error(code, err, fragment):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit: error:"), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "missing.toml", "--out", "{tmp}/r"], "config file 'missing.toml' does not exist"),
        (["train", "--set", "model.name=gan", "--out", "{tmp}/r"], "'model.name': got 'gan'"),
        (["train", "--set", "model.latent_dim=-1", "--out", "{tmp}/r"], "must be > 0"),
        (["train", "--set", "train.nope=1", "--out", "{tmp}/r"], "unknown config key 'train.nope'"),
        (["train", "--set", "data.name={tmp}/none.npz", "--out", "{tmp}/r"], "neither a dataset name"),
        (["train", "--set", "data.name={tmp}/corrupt.npy", "--out", "{tmp}/r"], "cannot read"),
        (
            ["train", "--set", "data.name={tmp}/neg.npy", "--set", "data.scaling=none", "--out", "{tmp}/r"],
            "needs data in [0, 1]",
        ),
        (["train", "--set", "data.name={tmp}/neg.npy", "--out", "{tmp}/file.txt/r"], "is not a folder"),
        (["train", "--set", "data.name={tmp}/neg.npy"], "needs --out"),
        (["train", "--resume", "{tmp}/nothing"], "not a run directory"),
        (["evaluate", "{tmp}/nothing"], "does not exist"),
        (["tour", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_one_line_exit_2(argv, fragment, tmp_path, capsys):
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    np.save(tmp_path / "neg.npy", np.linspace(-3, 3, 200, dtype=np.float32).reshape(20, 10))
    (tmp_path / "file.txt").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    fragment = fragment.replace("{tmp}", str(tmp_path))
    code, _, err = run([*argv[:1], *argv[1:]] if argv[0] != "train" else [*argv, "--set", "data.val_size=0"], capsys)
    _one_line_error(code, err, fragment)
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_errors_on_trained_runs(trained, tmp_path, capsys):
    code, _, err = run(["evaluate", str(trained), "--k", "0"], capsys)
    _one_line_error(code, err, "--k 0: must be 1..5000")
    code, _, err = run(["interpolate", str(trained), "--a", "999", "--out", str(tmp_path / "i.png")], capsys)
    _one_line_error(code, err, "--a 999: index out of range")
    np.save(tmp_path / "wide.npy", np.zeros((30, 5, 5), np.uint8))
    code, _, err = run(["evaluate", str(trained), "--data", str(tmp_path / "wide.npy")], capsys)
    _one_line_error(code, err, "does not match the model's input shape")
    code, _, err = run(["train", "--set", "train.epochs=1", "--out", str(trained)], capsys)
    _one_line_error(code, err, f"already exists and holds a run; continue it with 'vaekit train --resume {trained}'")
    code, _, err = run(["sample", str(trained), "--out", str(tmp_path / "no" / "dir" / "s.png")], capsys)
    _one_line_error(code, err, "does not exist")


def test_ae_cannot_sample(tmp_path, images_npz, capsys):
    code, _, err = run(
        [
            "train",
            "--set",
            f"data.name={images_npz}",
            "--set",
            "model.name=ae",
            "--set",
            "model.hidden=[8]",
            "--set",
            "train.epochs=1",
            "--quiet",
            "--out",
            str(tmp_path / "ae"),
        ],
        capsys,
    )
    assert code == 0, err
    code, _, err = run(["sample", str(tmp_path / "ae"), "--out", str(tmp_path / "s.png")], capsys)
    _one_line_error(code, err, "no prior to sample from")


def test_debug_shows_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "vaekit", "--debug", "train", "missing.toml", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "Traceback" in r.stderr and "VaekitError" in r.stderr


def test_module_entry_point_and_lazy_imports():
    r = subprocess.run([sys.executable, "-m", "vaekit", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("vaekit ")
    code = (
        "import sys, vaekit; vaekit.PCA; print(sorted(m for m in ('matplotlib', 'PIL', 'safetensors', "
        "'vaekit.explorer.pictures', 'vaekit.training.loop') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_requested_without_cuda(tmp_path, images_npz, capsys):
    code, _, err = run(
        ["train", "--set", f"data.name={images_npz}", "--device", "cuda", "--out", str(tmp_path / "r")], capsys
    )
    _one_line_error(code, err, "CUDA is not available")
    assert not (tmp_path / "r").exists()


FRONTIER = {  # [model] tables of the frontier models, as small as they get
    "hvae": 'name = "hvae"\nlatent_dims = [3, 2]\nhidden = [32, 16]',
    "iaf": 'name = "vae"\nlatent_dim = 3\nhidden = [32]\nposterior = "iaf"\nflow_hidden = [16]',
    "vqvae": 'name = "vqvae"\nchannels = [8, 16]\ndepth = 1\ncodebook_size = 16\ncodebook_dim = 4\nprior_width = '
    "16\nprior_layers = 1",
}


@pytest.mark.parametrize("kind", FRONTIER)
def test_the_frontier_models_from_the_command_line(kind, images_npz, tmp_path, capsys):
    """Train, evaluate, sample, reconstruct; interpolation and traversals where the code is
    continuous; the explorer refuses them in one line."""
    cfg = tmp_path / f"{kind}.toml"
    cfg.write_text(
        f'[data]\nname = "{images_npz}"\nval_size = 30\nbinarize = "dynamic"\n[model]\n{FRONTIER[kind]}\n'
        "[train]\nepochs = 2\nbatch_size = 32\neval_k = 20\nprogress = false\n"
    )
    run_dir = tmp_path / "run"
    code, _, err = run(["train", str(cfg), "--out", str(run_dir)], capsys)
    assert code == 0, err
    ev = json.loads((run_dir / "eval.json").read_text())
    if kind == "vqvae":  # the bound, in bits/dim too, and the codebook
        assert "log_px" not in ev and {"codebook_usage", "codebook_perplexity", "bits_per_dim"} <= set(ev)
    else:
        assert ev["log_px"]["value"] >= ev["elbo"]["value"] - 1.0
    assert (kind == "hvae") == ("kl_z2" in ev)
    for cmd in (
        ["sample", "--n", "9"],
        ["reconstruct", "--n", "4"],
        ["interpolate", "--a", "0", "--b", "3"],
        ["traverse"],
    ):
        target = tmp_path / f"{cmd[0]}.png"
        code, _, err = run([cmd[0], str(run_dir), "--out", str(target), *cmd[1:]], capsys)
        if kind == "vqvae" and cmd[0] in ("interpolate", "traverse"):
            assert code == 2 and "grid of codebook indices" in err and not target.exists()
        else:
            assert code == 0 and target.stat().st_size > 0, err
    code, _, err = run(["explore", str(run_dir), "--out", str(tmp_path / "page")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "page").exists()
