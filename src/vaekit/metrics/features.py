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

from vaekit.errors import VaekitError

MNIST_FEATURES_FILE = Path(__file__).resolve().parents[1] / "assets" / "mnist_features.safetensors"
MNIST_FEATURES_SHA256 = "f8bdfdef12279bf42538166e9e2c589f558012baa0dde1e4920a1566a347b516"  # bench/feature_net.py
FEATURES = 128  # the width of the penultimate layer: the feature space


class MnistFeatureNet(nn.Module):
    """(B, 1, 28, 28) images with values in [0, 1] -> (B, 10) logits; `features` gives the
    (B, 128) penultimate activations (after ReLU) that the generation metrics compare."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 16, 14, 14)
            nn.Conv2d(16, 32, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 5, 5)
            nn.Flatten(),
            nn.Linear(32 * 5 * 5, FEATURES),
            nn.ReLU(),
        )  # (B, 128)
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


def load_mnist_features(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[MnistFeatureNet, str]:
    """The shipped feature network (or the one at `path`) in eval mode, and its SHA-256 (the
    network's id). The shipped file must match the pinned digest."""
    from vaekit.training.checkpoints import load_tensors

    p = Path(path) if path is not None else MNIST_FEATURES_FILE
    if not p.is_file():
        raise VaekitError(
            f"feature network '{p}' is missing; reinstall vaekit (or rebuild it: python bench/feature_net.py)"
        )
    digest = file_sha256(p)
    if path is None and digest != MNIST_FEATURES_SHA256:
        raise VaekitError(
            f"feature network '{p}' has SHA-256 {digest[:16]}..., not the pinned {str(MNIST_FEATURES_SHA256)[:16]}...; "
            "reinstall vaekit"
        )
    net = MnistFeatureNet()
    try:
        net.load_state_dict(load_tensors(p))
    except RuntimeError as e:
        raise VaekitError(f"feature network '{p}' does not fit MnistFeatureNet: {str(e).splitlines()[0]}") from None
    return net.to(device).eval(), digest


# ---------------------------------------------------------------------------------------------
# Feature networks for other data: a classifier trained with vaekit, or Inception where it is installed.

FEATURE_FORMAT = "vaekit-feature-network"
_FEATURE_KEYS = {
    "format",
    "format_version",
    "vaekit_version",
    "shape",
    "classes",
    "width",
    "data",
    "epochs",
    "lr",
    "seed",
    "test_accuracy",
    "train_size",
}
MAX_SIDE = 4096


class FeatureNet(nn.Module):
    """A classifier whose penultimate activations serve as features, for any labelled data.

    Images (B, C, H, W), H and W >= 4: two 3x3 conv-ReLU-maxpool stages (32, 64 channels), an
    adaptive average pool to 4x4, then Linear -> `width` ReLU features. Vectors (B, F): Linear
    F -> 256 -> `width`, ReLU after each. `head` maps the (B, width) features to (B, classes) logits."""

    def __init__(self, shape: tuple[int, ...], classes: int, width: int = FEATURES) -> None:
        super().__init__()
        self.shape, self.classes, self.width = tuple(int(s) for s in shape), int(classes), int(width)
        if len(self.shape) == 3:
            self.body = nn.Sequential(
                nn.Conv2d(self.shape[0], 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
                nn.Conv2d(32, 64, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
                nn.AdaptiveAvgPool2d(4),
                nn.Flatten(),
                nn.Linear(64 * 16, self.width),
                nn.ReLU(),
            )  # (B, width)
        else:
            self.body = nn.Sequential(
                nn.Flatten(), nn.Linear(self.shape[0], 256), nn.ReLU(), nn.Linear(256, self.width), nn.ReLU()
            )  # (B, width)
        self.head = nn.Linear(self.width, self.classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise VaekitError(
                f"this feature network takes (N, {', '.join(map(str, self.shape))}) data; got {tuple(x.shape)}"
            )
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def check_feature_shape(shape: tuple[int, ...], where: str) -> None:
    ok = (len(shape) == 3 and 1 <= shape[0] <= 64 and all(4 <= s <= MAX_SIDE for s in shape[1:])) or (
        len(shape) == 1 and 1 <= shape[0] <= 10**6
    )
    if not ok:
        raise VaekitError(
            f"{where}: a feature network takes images (C <= 64 channels, sides 4..{MAX_SIDE}) or vectors "
            f"(at most 1,000,000 numbers); got shape {list(shape)}"
        )


def train_feature_network(
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 5,
    width: int = FEATURES,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
) -> FeatureNet:
    """A `FeatureNet` trained on x (N, *shape), labels y (N,) in 0..K-1, with outlier exposure
    (`classifier.train_classifier`), so its top-class probability is also low on non-data."""
    from vaekit.metrics.digit_score import train_classifier

    check_feature_shape(tuple(x.shape[1:]), "data")
    classes = int(y.max()) + 1
    if classes < 2:
        raise VaekitError("a feature network is trained as a classifier: the data needs at least 2 classes")
    torch.manual_seed(seed)  # the initial weights
    net = FeatureNet(tuple(x.shape[1:]), classes, width).to(x.device)
    return train_classifier(x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, net=net)


def save_feature_network(net: FeatureNet, directory: str | Path, info: dict | None = None) -> Path:
    """Write `net` as a plain directory: config.json (shape, classes, width, and `info`, e.g. the data
    and test accuracy) + model.safetensors, atomically."""
    import json

    from vaekit import __version__
    from vaekit.training.checkpoints import atomic_dir, save_tensors

    meta = {
        "format": FEATURE_FORMAT,
        "format_version": 1,
        "vaekit_version": __version__,
        "shape": list(net.shape),
        "classes": net.classes,
        "width": net.width,
        **(info or {}),
    }
    with atomic_dir(directory) as tmp:
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        save_tensors(net.state_dict(), tmp / "model.safetensors")
    return Path(directory)


def _int_in(meta: dict, key: str, low: int, high: int, where: Path) -> int:
    v = meta.get(key)
    if type(v) is not int or not low <= v <= high:
        raise VaekitError(f"'{where}': key '{key}' must be an integer in {low}..{high}; got {v!r}")
    return v


def load_feature_network(directory: str | Path, device: str | torch.device = "cpu") -> tuple[FeatureNet, str]:
    """A feature network written by `save_feature_network` (`vaekit features train`), in eval mode,
    and the SHA-256 of its weights file (its id)."""
    from vaekit.training.checkpoints import load_tensors, read_json

    d = Path(directory)
    where = d / "config.json"
    meta = read_json(where)
    if not isinstance(meta, dict) or meta.get("format") != FEATURE_FORMAT:
        raise VaekitError(
            f'\'{d}\' is not a feature network (its config.json lacks "format": "{FEATURE_FORMAT}"); '
            "make one with 'vaekit features train DATA --out DIR'"
        )
    unknown = sorted(set(meta) - _FEATURE_KEYS)
    if unknown:
        raise VaekitError(f"'{where}': unknown key '{unknown[0]}'; allowed: {', '.join(sorted(_FEATURE_KEYS))}")
    shape = meta.get("shape")
    if not isinstance(shape, list) or not all(type(s) is int for s in shape):
        raise VaekitError(f"'{where}': key 'shape' must be a list of integers; got {shape!r}")
    check_feature_shape(tuple(shape), str(where))
    net = FeatureNet(tuple(shape), _int_in(meta, "classes", 2, 100000, where), _int_in(meta, "width", 1, 4096, where))
    weights = d / "model.safetensors"
    try:
        net.load_state_dict(load_tensors(weights))
    except RuntimeError as e:
        raise VaekitError(
            f"'{weights}' does not fit the network config.json describes: {str(e).splitlines()[0]}"
        ) from None
    return net.to(device).eval(), file_sha256(weights)


INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's port of TF's FID Inception


class InceptionFeatures(nn.Module):
    """FID's Inception-v3 (torchmetrics' wrapper of torch-fidelity's port): (B, 1 or 3, H, W) in
    [0, 1] -> (B, 2048) pool features; grey images are repeated to RGB, values quantised to 8 bits
    as the network expects."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise VaekitError(f"Inception takes grey or RGB images (N, 1 or 3, H, W); got {tuple(x.shape)}")
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.net((x * 255).round().clamp(0, 255).to(torch.uint8)).reshape(len(x), -1)


def load_inception(device: str | torch.device = "cpu") -> tuple[InceptionFeatures, str]:
    """Inception from the weights already in torch's hub cache (never downloaded), loaded with
    `weights_only=True`; and the weights file's SHA-256."""
    from unittest import mock

    try:
        import torch_fidelity.feature_extractor_inceptionv3 as tfi
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError:
        raise VaekitError(
            "the Inception feature network needs torchmetrics and torch-fidelity (with a torchvision that "
            "matches your torch): pip install torchmetrics torch-fidelity"
        ) from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    if not path.is_file():
        raise VaekitError(
            f"Inception's weights are not on this machine ('{path}' is missing) and vaekit never downloads "
            f"them; put torch-fidelity's {INCEPTION_WEIGHTS} there, or use --features DIR from 'vaekit features train'"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise VaekitError(f"cannot read Inception's weights '{path}': {str(e).splitlines()[0][:200]}") from None
    # torch-fidelity would fetch the file itself (and unpickle it without weights_only); hand it the tensors instead.
    with mock.patch.object(tfi, "load_state_dict_from_url", lambda *a, **k: state):
        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    return InceptionFeatures(net).to(device).eval(), file_sha256(path)


def check_features_fit(spec: str | Path | None, shape: tuple[int, ...]) -> tuple[nn.Module, str, str]:
    """`load_features(spec)`, refused in the feature network's own words if it cannot take data of
    `shape` (one blank example is passed through it)."""
    loaded = load_features(spec)
    with torch.no_grad():
        loaded[0].features(torch.zeros(1, *shape))
    return loaded


def load_features(spec: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, str, str]:
    """The feature network `spec` names, as (net with `.features(x)`, its name, the SHA-256 of its
    weights): None for the shipped MNIST network; "inception"; a directory from `vaekit features
    train`; or a file of MnistFeatureNet weights."""
    if spec is None:
        net, digest = load_mnist_features(device=device)
        return net, "mnist-features", digest
    if str(spec) == "inception":
        net, digest = load_inception(device)
        return net, "inception-v3", digest
    p = Path(spec)
    if not p.exists():
        raise VaekitError(
            f"feature network '{p}' does not exist; give a directory from 'vaekit features train', "
            "'inception', or nothing for the shipped MNIST network"
        )
    if p.is_dir():
        net, digest = load_feature_network(p, device)
        return net, f"features '{p.name}'", digest
    net, digest = load_mnist_features(p, device)
    return net, "mnist-features", digest


def train_features(
    data: str,
    out: str | Path,
    epochs: int = 5,
    width: int = FEATURES,
    seed: int = 0,
    lr: float = 1e-3,
    device: str | torch.device = "cpu",
    data_dir: str | None = None,
) -> dict:
    """`vaekit features train DATA --out DIR`: train a `FeatureNet` on a labelled dataset (a name or
    a path, as `data.name` takes), measure its test accuracy, and write it to `out`. Returns what
    config.json records."""
    import time

    from vaekit.config import DataConfig
    from vaekit.data.prepared import describe, prepare
    from vaekit.metrics.digit_score import accuracy
    from vaekit.training.checkpoints import check_out_folder

    out = check_out_folder(out)
    if out.exists() and any(out.iterdir()):
        raise VaekitError(f"--out '{out}' already exists and is not an empty folder; choose another")
    cfg = DataConfig(name=data, data_dir=data_dir, val_size=0)
    d = prepare(cfg, device=device)
    if d.streamed:
        raise VaekitError(f"data '{data}' is streamed from disk; a feature network trains on data held in memory")
    if d.y_train is None or d.y_test is None:
        raise VaekitError(f"data '{data}' has no labels; a feature network is trained as a classifier of them")
    t = time.perf_counter()
    net = train_feature_network(d.x_train, d.y_train, epochs=epochs, width=width, seed=seed, lr=lr)
    acc = accuracy(net, d.x_test, d.y_test) if len(d.x_test) else float("nan")
    info = {
        "data": describe(cfg),
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "train_size": len(d.x_train),
        "test_accuracy": acc if acc == acc else None,
    }
    save_feature_network(net.cpu(), out, info)
    return {**info, "seconds": time.perf_counter() - t, "sha256": file_sha256(out / "model.safetensors")}
