"""The feature network every generation metric of vaekit measures in.

Sample-quality metrics (Fréchet distance, KID, precision and recall) compare two sets of images
in the feature space of a fixed network; two numbers are comparable only when that network is
the same. vaekit ships one for 28x28 grey digits: `MnistFeatureNet`, a LeNet-sized convolutional
classifier whose 128 penultimate activations are the features. Its weights ship inside the
package (`assets/mnist_features.safetensors`, about 0.5 MB), are reproduced bit for bit by
`bench/feature_net.py`, and are checked against `MNIST_FEATURES_SHA256` when loaded: the digest
is the network's id, printed with every score.

It is trained with outlier exposure (as `classifier.py` explains: pixel-shuffled digits and noise
pushed towards the uniform prediction), so its top-class probability also serves as the tour's
"digit score" without retraining a classifier on every run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from .errors import VaekitError

MNIST_FEATURES_FILE = Path(__file__).parent / "assets" / "mnist_features.safetensors"
MNIST_FEATURES_SHA256 = "f8bdfdef12279bf42538166e9e2c589f558012baa0dde1e4920a1566a347b516"  # bench/feature_net.py
FEATURES = 128  # the width of the penultimate layer: the feature space


class MnistFeatureNet(nn.Module):
    """(B, 1, 28, 28) images with values in [0, 1] -> (B, 10) logits; `features` gives the
    (B, 128) penultimate activations (after ReLU) that the generation metrics compare."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 5, 5)
            nn.Flatten(), nn.Linear(32 * 5 * 5, FEATURES), nn.ReLU())  # (B, 128)
        self.head = nn.Linear(FEATURES, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != (1, 28, 28):
            raise VaekitError(f"the MNIST feature network takes (N, 1, 28, 28) images; got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_mnist_features(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[MnistFeatureNet, str]:
    """The shipped feature network (or the one at `path`) in eval mode, and its SHA-256 (the
    network's id). The shipped file must match the pinned digest."""
    from .checkpoint import _load_tensors

    p = Path(path) if path is not None else MNIST_FEATURES_FILE
    if not p.is_file():
        raise VaekitError(f"feature network '{p}' is missing; reinstall vaekit (or rebuild it: python bench/feature_net.py)")
    digest = file_sha256(p)
    if path is None and digest != MNIST_FEATURES_SHA256:
        raise VaekitError(f"feature network '{p}' has SHA-256 {digest[:16]}..., not the pinned {str(MNIST_FEATURES_SHA256)[:16]}...; "
                          "reinstall vaekit")
    net = MnistFeatureNet()
    try:
        net.load_state_dict(_load_tensors(p))
    except RuntimeError as e:
        raise VaekitError(f"feature network '{p}' does not fit MnistFeatureNet: {str(e).splitlines()[0]}") from None
    return net.to(device).eval(), digest
