"""Loading never runs code: crafted pickles and crafted checkpoints are refused, and the payload
(which would create a marker file if it ever ran) never runs."""

import ast
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.cli import main
from vaekit.errors import VaekitError


class Payload:
    """Unpickling this calls open(marker, "w"): a file appears if any loader runs pickled code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "PWNED"
    # The payload really is live: plain pickle runs it (and this is what every loader must not do).
    pickle.loads(pickle.dumps(Payload(m)))
    assert m.exists()
    m.unlink()
    return m


def _model_dir(tmp_path):
    from vaekit.config import ModelConfig
    from vaekit.models import build_model
    from vaekit.training.checkpoints import save_pretrained

    d = tmp_path / "model"
    save_pretrained(build_model(ModelConfig(name="vae", latent_dim=2, hidden=[16]), (1, 8, 8)), d)
    return d


def _torch_save_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["pickle", "torch.save"])
def test_crafted_weights_in_a_model_directory(tmp_path, marker, capsys, fmt):
    d = _model_dir(tmp_path)
    evil = {"encoder.net.0.weight": Payload(marker)}
    (d / "model.safetensors").write_bytes(pickle.dumps(evil) if fmt == "pickle" else _torch_save_bytes(evil))
    from vaekit import load

    with pytest.raises(VaekitError, match="cannot read weights"):
        load(d)
    assert main(["sample", str(d), "--out", str(tmp_path / "s.png")]) == 2
    assert "cannot read weights" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "s.png").exists()


def test_crafted_training_checkpoint(tmp_path, images_npz, marker, capsys):
    run = tmp_path / "run"
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
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    (ck,) = (run / "checkpoints").iterdir()
    (ck / "state.safetensors").write_bytes(_torch_save_bytes({"optimizer": Payload(marker)}))
    meta = json.loads((ck / "training.json").read_text())
    meta["state"] = {"__reduce__": ["os", "system", "touch " + str(marker)]}  # JSON: only ever data
    (ck / "training.json").write_text(json.dumps(meta))
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 2
    assert "cannot read weights" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_object_arrays_in_data_files(tmp_path, marker, capsys, kind):
    arr = np.array([Payload(marker), 1], dtype=object)
    path = tmp_path / f"evil.{kind}"
    if kind == "npy":
        np.save(path, arr, allow_pickle=True)
    else:
        np.savez(path, x=arr)
    code = main(["train", "--set", f"data.name={path}", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "allow_pickle" in err and str(path) in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_mnist_unpickler_admits_arrays_only(marker):
    from vaekit.data.downloads import load_arrays_pickle

    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays are allowed"):
        load_arrays_pickle(pickle.dumps([np.zeros(3), Payload(marker)]))
    assert not marker.exists()
    ok = load_arrays_pickle(pickle.dumps((np.arange(3), np.ones((2, 2)))))
    assert np.array_equal(ok[0], np.arange(3))


def test_mnist_cache_with_pickled_content(tmp_path, marker, monkeypatch):
    """A cache file swapped for one holding object arrays is ignored and rebuilt, never unpickled."""
    from vaekit.data import mnist

    cache = Path(mnist.cache_dir()) / mnist.CACHE_NAME
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x_train=np.array([Payload(marker)], dtype=object))
    monkeypatch.setattr(mnist, "from_mirrors", lambda *a, **k: None)
    monkeypatch.setattr(mnist, "from_hub_wheel", lambda *a, **k: None)
    with pytest.raises(VaekitError, match="could not acquire MNIST"):
        mnist.load_mnist()
    assert not marker.exists()


def _unsafe_calls(tree):
    """Calls in a module's syntax tree that could execute code from data."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = (
            f.id
            if isinstance(f, ast.Name)
            else (f"{getattr(f.value, 'id', '?')}.{f.attr}" if isinstance(f, ast.Attribute) else "")
        )
        kw = {k.arg: k.value for k in node.keywords}
        if name in (
            "eval",
            "exec",
            "__import__",
            "pickle.load",
            "pickle.loads",
            "marshal.loads",
            "dill.load",
            "joblib.load",
        ):
            yield name
        if name == "torch.load" and not (
            isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
        ):
            yield "torch.load without weights_only=True"
        if isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is True:
            yield f"{name}(allow_pickle=True)"


def test_no_unsafe_loader_in_the_source():
    """The package never calls a code-executing loader: no pickle.load(s) (the MNIST source goes
    through the restricted ArraysOnlyUnpickler), no torch.load without weights_only=True, no
    allow_pickle=True, no eval/exec."""
    src = Path(__file__).resolve().parents[1] / "src" / "vaekit"
    offenders = [f"{f.name}: {c}" for f in sorted(src.rglob("*.py")) for c in _unsafe_calls(ast.parse(f.read_text()))]
    assert offenders == []
    # The detector itself works:
    assert list(
        _unsafe_calls(
            ast.parse("torch.load(p)\ntorch.load(p, weights_only=True)\npickle.loads(b)\nnp.load(p, allow_pickle=True)")
        )
    ) == ["torch.load without weights_only=True", "pickle.loads", "np.load(allow_pickle=True)"]
    shared = (src / "data" / "downloads.py").read_text()
    assert "class ArraysOnlyUnpickler(pickle.Unpickler)" in shared and "def find_class" in shared


def test_run_config_paths_cannot_escape_the_run_directory(tmp_path, images_npz, capsys):
    run = tmp_path / "shared" / "run"
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
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["data"]["name"] == str(images_npz.resolve())  # vaekit records absolute paths
    for key, value in (("name", "../../digits.npz"), ("data_dir", "../../..")):
        cfg = json.loads((run / "config.json").read_text())
        cfg["data"][key] = value
        (run / "config.json").write_text(json.dumps(cfg))
        for argv in (
            ["evaluate", str(run), "--k", "5"],
            ["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"],
        ):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"data.{key} = '{value}' points outside the run directory" in err
        cfg["data"] = recorded["data"]
        (run / "config.json").write_text(json.dumps(cfg))
    # A relative path that stays inside the run directory is read from there.
    (run / "data").mkdir()
    (run / "data" / "d.npz").write_bytes(images_npz.read_bytes())
    cfg["data"]["name"] = "data/d.npz"
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["evaluate", str(run), "--k", "5"]) == 0
