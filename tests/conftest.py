import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

# The suite runs on two workers (pytest-xdist, -n 2): one thread each, so two cores run two tests
# instead of four threads thrashing; alone (no -n), one process takes both cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # numpy's and scikit-learn's BLAS/OpenMP pools too
else:
    torch.set_num_threads(2)

# Property tests draw the same examples on every run, so CI cannot fail by chance; run
# HYPOTHESIS_PROFILE=explore pytest ... to search afresh (random seeds, more examples).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def low_rank(n: int = 400, f: int = 12, rank: int = 3, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    """n points near a `rank`-dimensional affine subspace of R^f: (n, f) float32."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(f, rank, generator=g))[0]  # (f, rank)
    scales = torch.linspace(3.0, 1.0, rank)
    z = torch.randn(n, rank, generator=g) * scales
    return (z @ basis.T + 0.5 + noise * torch.randn(n, f, generator=g)).float()


def digit_like(n: int = 300, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tiny uint8 'digits': class k is a bright bar at row k (size x size), with noise. (n, size, size), (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, min(size, 10), n)
    x = (rng.random((n, size, size)) * 60).astype(np.float64)
    x[np.arange(n), y] += 180
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.uint8)


@pytest.fixture
def images_npz(tmp_path):
    x, y = digit_like()
    p = tmp_path / "digits.npz"
    np.savez(p, x=x, y=y)
    return p


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "cache"))


def train_small_run(
    data: Path,
    out: Path,
    latent_dim: int = 2,
    hidden: int = 32,
    epochs: int = 1,
    val_size: int = 0,
    extra: tuple[str, ...] = (),
    pictures: bool = False,
) -> Path:
    """Train a small MLP model on `data` through the CLI (the run the CLI tests then act on); returns
    `out`. Without `pictures`, --no-pictures: the PNGs are most of a tiny run's time."""
    from vaekit.cli import main

    sets = {
        "data.name": data,
        "train.epochs": epochs,
        "model.hidden": f"[{hidden}]",
        "model.latent_dim": latent_dim,
        "data.val_size": val_size,
        "train.eval_k": 0,
    }
    argv = ["train", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")], *extra, "--quiet", "--out", str(out)]
    argv += [] if pictures else ["--no-pictures"]
    assert main(argv) == 0
    return out


# Small trained runs that the tests of bad input damage or feed bad arguments (copies, where they change them).


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from refusals import SMALL, X
    from vaekit.cli import main

    root = tmp_path_factory.mktemp("trained")
    np.save(root / "x.npy", X)
    assert (
        main(
            [
                "train",
                "--set",
                f"data.name={root / 'x.npy'}",
                *SMALL,
                "--set",
                "model.likelihood=gaussian",
                "--no-pictures",
                "--out",
                str(root / "run"),
            ]
        )
        == 0
    )
    return root


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    from vaekit.cli import main

    root = tmp_path_factory.mktemp("ae")
    x, y = digit_like(200, size=8)
    np.savez(root / "d.npz", x=x, y=y)
    run = train_small_run(root / "d.npz", root / "ae", latent_dim=2, hidden=16, extra=("--set", "model.name=ae"))
    for spec in ("gaussian", "gmm:2", "two-stage"):
        assert main(["sample", str(run), "--sampler", spec, "--n", "2", "--out", str(root / "warm.png")]) == 0
    return run


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("crossings")
    x, y = digit_like(200, size=8)
    np.savez(root / "d.npz", x=x, y=y % 3)
    np.savez(root / "d6.npz", x=x, y=y % 6)
    return root


@pytest.fixture(scope="module")
def cvae_run(digits):
    return train_small_run(
        digits / "d.npz", digits / "cvae", latent_dim=2, hidden=16, extra=("--set", "model.conditional=true")
    )


@pytest.fixture(scope="session")
def onnx_registry_once():
    """The tests export to ONNX about a hundred times, and for every export torch builds its table of
    some 1,000 torchlib translations anew (about 40% of an export's time here). Only a custom
    translation table changes it, and vaekit passes none, so the tests build it once per opset; the
    files come out the same (test_export checks). Yields the original builder."""
    from torch.onnx._internal.exporter import _registration

    static = _registration.ONNXRegistry.__dict__["from_torchlib"]  # the classmethod itself
    original = _registration.ONNXRegistry.from_torchlib
    built = {}

    def once(cls, opset_version):
        if opset_version not in built:
            built[opset_version] = original(opset_version=opset_version)
        return built[opset_version]

    _registration.ONNXRegistry.from_torchlib = classmethod(once)
    try:
        yield original
    finally:
        _registration.ONNXRegistry.from_torchlib = static
