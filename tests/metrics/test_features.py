"""The shipped MNIST feature network (issue 16): its file matches the pinned SHA-256, it loads into
MnistFeatureNet, gives 128 features per image, refuses other shapes and changed files, and, trained
with outlier exposure, is unsure about noise (so its top-class probability can serve as the digit
score)."""

import shutil

import pytest
import torch

from vaekit.errors import VaekitError
from vaekit.metrics.features import (
    FEATURES,
    MNIST_FEATURES_FILE,
    MNIST_FEATURES_SHA256,
    file_sha256,
    load_mnist_features,
)


def test_the_shipped_file_is_the_pinned_one_and_small():
    assert MNIST_FEATURES_FILE.is_file()
    assert file_sha256(MNIST_FEATURES_FILE) == MNIST_FEATURES_SHA256
    assert MNIST_FEATURES_FILE.stat().st_size < 1 << 20


def test_features_and_logits_have_their_shapes():
    net, digest = load_mnist_features()
    assert digest == MNIST_FEATURES_SHA256
    x = torch.rand(7, 1, 28, 28)
    with torch.no_grad():
        f, logits = net.features(x), net(x)
    assert f.shape == (7, FEATURES) and logits.shape == (7, 10) and (f >= 0).all()  # after ReLU
    with pytest.raises(VaekitError, match=r"takes \(N, 1, 28, 28\) images"):
        net.features(torch.rand(2, 3, 32, 32))


def test_noise_is_not_read_as_a_digit():
    net, _ = load_mnist_features()
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(500, 1, 28, 28, generator=g) * torch.rand(500, 1, 1, 1, generator=g)
    with torch.no_grad():
        top = net(noise).softmax(1).amax(1)
    assert float(top.mean()) < 0.5  # a plain classifier says ~0.9 for noise


def test_a_changed_copy_is_told_apart(tmp_path, monkeypatch):
    import vaekit.metrics.features as F

    copy = tmp_path / "f.safetensors"
    shutil.copy(MNIST_FEATURES_FILE, copy)
    net, digest = load_mnist_features(copy)  # a file named by the user: its own digest is its id
    assert digest == MNIST_FEATURES_SHA256
    blob = bytearray(copy.read_bytes())
    blob[-1] ^= 1
    copy.write_bytes(bytes(blob))
    with pytest.raises(VaekitError, match="SHA-256 does not match"):
        load_mnist_features(copy)
    monkeypatch.setattr(F, "MNIST_FEATURES_FILE", copy)
    with pytest.raises(VaekitError, match="not the pinned"):
        load_mnist_features()
