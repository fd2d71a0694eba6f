"""Feature networks for data other than MNIST (issue 16): a classifier trained with `vaekit features
train` (a plain directory: config.json + safetensors) and Inception where torch-fidelity and its
weights are already on the machine. The trained network must classify what it was trained on, its
features must separate the classes, it must round-trip exactly, and bad directories get one line."""

import json
import sys
import types

import numpy as np
import pytest
import torch

from conftest import digit_like, train_small_run
from vaekit.errors import VaekitError
from vaekit.metrics.features import (
    FEATURE_FORMAT,
    FeatureNet,
    InceptionFeatures,
    file_sha256,
    load_feature_network,
    load_features,
    load_inception,
    save_feature_network,
    train_feature_network,
)


def _digits(n=600, size=8, seed=0):
    x, y = digit_like(n, size=size, seed=seed)
    return torch.from_numpy(x).float()[:, None] / 255, torch.from_numpy(y).long()


def test_a_trained_feature_network_classifies_and_its_features_separate_the_classes():
    x, y = _digits()
    xt, yt = _digits(300, seed=1)
    net = train_feature_network(x, y, epochs=6, width=32, lr=5e-3)
    with torch.no_grad():
        assert float((net(xt).argmax(1) == yt).float().mean()) > 0.95
        f = net.features(xt)
    assert f.shape == (300, 32) and (f >= 0).all()
    centroids = torch.stack([f[yt == k].mean(0) for k in range(8)])
    nearest = torch.cdist(f, centroids).argmin(1)  # features alone, no head: the classes are apart
    assert float((nearest == yt).float().mean()) > 0.9


def test_vectors_get_an_mlp_and_bad_shapes_are_refused():
    net = FeatureNet((5,), classes=3, width=16)
    assert net.features(torch.rand(4, 5)).shape == (4, 16)
    with pytest.raises(VaekitError, match=r"takes \(N, 5\) data"):
        net.features(torch.rand(4, 6))
    with pytest.raises(VaekitError, match="sides 4"):
        train_feature_network(torch.rand(10, 1, 2, 2), torch.arange(10) % 2)
    with pytest.raises(VaekitError, match="at least 2 classes"):
        train_feature_network(torch.rand(10, 3), torch.zeros(10, dtype=torch.long))


def test_a_saved_feature_network_loads_to_the_same_features_and_is_named_by_its_hash(tmp_path):
    x, y = _digits(200)
    net = train_feature_network(x, y, epochs=1, width=16)
    save_feature_network(net, tmp_path / "f", {"epochs": 1})
    back, digest = load_feature_network(tmp_path / "f")
    assert digest == file_sha256(tmp_path / "f" / "model.safetensors")
    with torch.no_grad():
        assert torch.equal(back.features(x[:20]), net.features(x[:20]))
    spec_net, name, spec_digest = load_features(tmp_path / "f")
    assert name == "features 'f'" and spec_digest == digest


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "vaekit"}, "is not a feature network"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"shape": [1, 8]}, "got shape \\[1, 8\\]"),
        ({"shape": "1x8x8"}, "must be a list of integers"),
        ({"classes": 1}, "key 'classes' must be an integer in 2..100000"),
        ({"classes": 9}, "does not fit the network config.json describes"),
        ({"width": True}, "key 'width' must be an integer"),
    ],
)
def test_damaged_feature_directories_are_refused_in_one_line(tmp_path, change, message):
    save_feature_network(FeatureNet((1, 8, 8), 8, 16), tmp_path / "f")
    meta = json.loads((tmp_path / "f" / "config.json").read_text())
    (tmp_path / "f" / "config.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(VaekitError, match=message) as e:
        load_feature_network(tmp_path / "f")
    assert "\n" not in str(e.value)


def test_a_missing_feature_network_is_named(tmp_path):
    with pytest.raises(VaekitError, match="'.*nowhere' does not exist"):
        load_features(tmp_path / "nowhere")


def test_features_train_then_evaluate_generation_through_the_cli(tmp_path, capsys):
    from vaekit.cli import main

    x, y = digit_like(500, size=12)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert (
        main(
            [
                "features",
                "train",
                str(tmp_path / "d.npz"),
                "--out",
                str(tmp_path / "feat"),
                "--epochs",
                "8",
                "--width",
                "24",
                "--lr",
                "5e-3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    meta = json.loads((tmp_path / "feat" / "config.json").read_text())
    assert meta["format"] == FEATURE_FORMAT and meta["shape"] == [1, 12, 12] and meta["width"] == 24
    assert meta["test_accuracy"] > 0.9 and f"sha256:{file_sha256(tmp_path / 'feat' / 'model.safetensors')}" in out
    train_small_run(tmp_path / "d.npz", tmp_path / "vae", val_size=100)
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "vae"),
                "--generation",
                "--n",
                "40",
                "--json",
                "--features",
                str(tmp_path / "feat"),
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["network_name"] == "features 'feat'"
    assert res["network"] == file_sha256(tmp_path / "feat" / "model.safetensors")
    assert "features of features 'feat'" in res["model"]["frechet_distance"]["unit"]
    assert res["floor"]["frechet_distance"]["value"] < res["model"]["frechet_distance"]["value"]
    # a feature network of other data does not fit; a second --out into it is refused
    assert (
        main(["evaluate", str(tmp_path / "vae"), "--generation", "--n", "40", "--features", str(tmp_path / "feat2")])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["features", "train", str(tmp_path / "d.npz"), "--out", str(tmp_path / "feat")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_features_train_needs_labels(tmp_path, capsys):
    from vaekit.cli import main

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((100, 1, 8, 8)).astype(np.float32))
    assert main(["features", "train", str(tmp_path / "x.npy"), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "has no labels" in err and err.count("\n") == 1 and not (tmp_path / "f").exists()


def test_inception_without_torch_fidelity_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(VaekitError, match="needs torchmetrics and torch-fidelity"):
        load_features("inception")


@pytest.fixture
def fake_fidelity(monkeypatch):
    """Stand-ins for torch-fidelity's module and torchmetrics' wrapper (torch-fidelity needs a
    torchvision built for this torch, which this CPU machine lacks): the stand-in network gets its
    state dict the way torch-fidelity's does, from `load_state_dict_from_url`, which must not download."""
    tfi = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")

    def download(*a, **k):
        raise AssertionError("vaekit must never let torch-fidelity download")

    tfi.load_state_dict_from_url = download

    class Net(torch.nn.Module):
        def __init__(self, name, features_list):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3, 2048))
            self.load_state_dict(tfi.load_state_dict_from_url("https://example.invalid/w.pth"))
            self.seen = None

        def forward(self, x):
            assert x.dtype == torch.uint8 and x.shape[1] == 3
            self.seen = x
            return x.float().mean((2, 3)) @ self.w

    fid = types.ModuleType("torchmetrics.image.fid")
    fid.NoTrainInceptionV3 = Net
    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", tfi)
    monkeypatch.setitem(sys.modules, "torchmetrics.image.fid", fid)
    return tfi


def test_inception_weights_must_already_be_on_the_machine(tmp_path, monkeypatch, fake_fidelity):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(VaekitError, match="never downloads"):
        load_inception()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    weights = tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    torch.save({"w": torch.ones(3, 2048)}, weights)
    net, digest = load_inception()
    assert isinstance(net, InceptionFeatures) and digest == file_sha256(weights)
    grey = torch.full((2, 1, 5, 5), 0.5)
    f = net.features(grey)  # grey repeated to RGB, quantised to 8 bits
    assert f.shape == (2, 2048) and torch.equal(net.net.seen[:, 0], net.net.seen[:, 2])
    assert int(net.net.seen[0, 0, 0, 0]) == 128 and torch.allclose(f, torch.full((2, 2048), 3 * 128.0))
    # a pickle that runs code is refused (weights_only=True), in one line
    torch.save({"w": torch.ones(3, 2048), "f": types.SimpleNamespace()}, weights)
    with pytest.raises(VaekitError, match="cannot read Inception's weights"):
        load_inception()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "--epochs 0: must be 1..10000"),
        (["--width", "5000"], "--width 5000: must be 1..4096"),
        (["--lr", "nan"], "--lr nan: must be in \\(0, 1\\]"),
        (["--lr", "2"], "--lr 2.0: must be in \\(0, 1\\]"),
    ],
)
def test_features_train_refuses_bad_options_in_one_line(tmp_path, capsys, args, message):
    import re

    from vaekit.cli import main

    x, y = digit_like(60, size=8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert main(["features", "train", str(tmp_path / "d.npz"), "--out", str(tmp_path / "f"), *args]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1 and not (tmp_path / "f").exists()


def test_the_tour_refuses_a_feature_network_without_a_head(tmp_path, monkeypatch, capsys):
    import vaekit.metrics.features as features
    from vaekit.cli import main

    monkeypatch.setattr(
        features, "load_inception", lambda device="cpu": (InceptionFeatures(torch.nn.Identity()), "0" * 64)
    )
    assert main(["tour", "--quick", "--out", str(tmp_path / "t"), "--features", "inception"]) == 2
    assert "has no head" in capsys.readouterr().err and not (tmp_path / "t").exists()
