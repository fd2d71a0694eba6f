"""Datasets by name and the user's own data, prepared as tensors on the training device.

Everything is held in memory as float32 tensors and batched by index (no per-sample Python in the
hot loop). Shapes: images ``(N, C, H, W)``, tabular vectors ``(N, D)``; labels ``(N,)`` int64 or
``None``. Preparation:

- uint8 data is scaled to [0, 1] by /255;
- float vectors are scaled per feature with statistics of the training split (``minmax`` or
  ``standard``); float images already in [0, 1] are kept, others are min-max scaled globally;
- ``binarize="fixed"`` samples x ~ Bernoulli(x) once with ``seed``; ``"dynamic"`` resamples every
  training batch (so every epoch sees fresh binarisations) while validation and test are binarised
  once with the fixed seed;
- ``dequantize="uniform"`` (8-bit data only) replaces x = k/255 by (k + u)/256 with u ~ U[0, 1),
  fresh for every training batch and fixed (seeded) for validation and test, so a density on [0, 1]
  gives a lower bound on the likelihood of the discrete data (minus D log 256 nats);
- a validation split of ``val_size`` examples is carved from the training set with ``seed``; the
  test set is never touched (user data without a test split gets a seeded 10% test carve-out).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.config import DataConfig
from vaekit.data.readers import (  # noqa: F401 -- IMAGE_SUFFIXES and read_image: the old names of vaekit.data
    IMAGE_SUFFIXES,
    MAX_FOLDER_ENTRIES,
    StreamImages,
    list_images,
    read_image,
    regular_file,
    walk_images,
)
from vaekit.errors import VaekitError, check_regular_file


@dataclass
class Data:
    """Prepared splits. x_*: (N, *shape) float32 (a streamed folder's x_train: `DiskImages`, the same
    split read from disk when indexed); y_*: (N,) int64 or None."""

    name: str
    kind: str  # "image" or "vector"
    shape: tuple[int, ...]  # (C, H, W) or (D,)
    x_train: torch.Tensor | DiskImages
    x_val: torch.Tensor
    x_test: torch.Tensor
    y_train: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    dynamic_binarize: bool = False
    dequantized: bool = False  # uniformly dequantised 8-bit data: training batches get fresh noise
    levels: int | None = None  # 256 for 8-bit data, 2 once binarised, None for continuous data
    ground_truth: Any = None  # data with known generative factors (shapes.ShapesGrid): for the disentanglement metrics

    def train_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """The training examples at `idx`, with a fresh binarisation or dequantisation: (B, *shape)."""
        return self.per_batch(self.x_train[idx])

    def per_batch(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, *shape) as stored, made a training batch: binarised afresh (data.binarize = 'dynamic')
        and dequantised afresh (data.dequantize = 'uniform'), with the global generator."""
        if self.dynamic_binarize:
            x = torch.bernoulli(x)
        if self.dequantized:
            x = dequantize(x)
        return x

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def device(self) -> torch.device:
        return self.x_test.device

    def iterate(self, index_batches: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """(x, y) for each batch of training indices, in order: x (B, *shape) freshly binarised or
        dequantised as configured, y (B,) or None. Each batch is made when it is asked for."""
        for idx in index_batches:
            yield self.train_batch(idx), (self.y_train[idx] if self.y_train is not None else None)

    @property
    def x_check(self) -> torch.Tensor:
        """Training examples in memory for checks of the values (range, binary, levels): all of them."""
        return self.x_train

    @property
    def streamed(self) -> bool:
        return False

    def to(self, device: torch.device | str) -> Data:
        for k in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
            v = getattr(self, k)
            if v is not None:
                setattr(self, k, v.to(device))
        return self


class LazyImages:
    """A split whose images are made when indexed (read from disk, or drawn): `len()` is its size and
    `x[idx]` (idx: (B,) positions, or a slice) makes those images, (B, C, H, W) float on `device`, as
    stored (before any per-batch binarisation or dequantisation). Subclasses say how, in `_make`."""

    def __init__(self, index: np.ndarray, image_shape: tuple[int, ...], device: torch.device | str):
        self.index, self.device = index, torch.device(device)
        self.shape = (len(index), *image_shape)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: torch.Tensor | np.ndarray | slice) -> torch.Tensor:
        """Images at positions idx (B,), or a slice of positions as a tensor takes it."""
        return self._make(self.index[idx if isinstance(idx, slice) else torch.as_tensor(idx).cpu().numpy()])

    def _make(self, rows: np.ndarray) -> torch.Tensor:
        """The images of source rows `rows` (B,): (B, C, H, W) float on self.device."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> LazyImages:
        raise NotImplementedError


class DiskImages(LazyImages):
    """The training split of a streamed folder, left on disk: images read when indexed, in [0, 1]."""

    def __init__(self, stream: StreamImages, index: np.ndarray, device: torch.device | str):
        super().__init__(index, stream.shape_chw, device)
        self.stream = stream

    def _make(self, rows: np.ndarray) -> torch.Tensor:
        return torch.stack([self.stream[int(i)][0] for i in rows]).to(self.device).float() / 255

    def to(self, device: torch.device | str) -> DiskImages:
        return DiskImages(self.stream, self.index, device)


@dataclass
class OnDemandData(Data):
    """Training images made as batches need them (read from disk, or drawn); `x_head` holds the
    first (up to 1000) training images in memory, for the checks of the values."""

    x_head: torch.Tensor | None = None

    @property
    def x_check(self) -> torch.Tensor:
        return self.x_head

    @property
    def streamed(self) -> bool:
        return True

    def to(self, device: torch.device | str) -> OnDemandData:
        super().to(device)
        self.x_head = self.x_head.to(device)
        return self


@dataclass
class StreamData(OnDemandData):
    """Training images stay on disk (`x_train` is a `DiskImages`) and are read by DataLoader worker
    processes as batches are needed, so memory does not grow with the training set. `x_head`
    holds the first (up to 1000) training images in memory, for the checks of the values;
    validation and test splits are in memory (at most data.val_size and 10,000 images)."""

    stream: StreamImages | None = None
    train_index: np.ndarray | None = None  # positions in `stream` of the training examples
    workers: int = 2

    @property
    def n_train(self) -> int:
        return len(self.train_index)

    def iterate(self, index_batches: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        loader = torch.utils.data.DataLoader(
            self.stream,
            batch_sampler=[self.train_index[idx.cpu().numpy()].tolist() for idx in index_batches],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(0),
        )  # its own: a DataLoader would otherwise draw from the global RNG
        try:
            for x, y in loader:
                x = x.to(self.device, non_blocking=True).float() / 255  # (B, C, H, W) in [0, 1]
                yield self.per_batch(x), (y.to(self.device) if self.y_train is not None else None)
        except VaekitError as e:  # raised in a worker: the original one-line message is its last line
            raise VaekitError(str(e).strip().splitlines()[-1].removeprefix("vaekit.errors.VaekitError: ")) from None


@dataclass
class RenderedData(OnDemandData):
    """Data with known factors (shapes, or a file of images with factors): training images are made
    as batches are needed (`x_train` is a `shapes.RenderedImages`), so memory does not grow with the
    grid; validation and test splits are in memory."""


def refuse_fixed_binarisation(cfg: DataConfig) -> None:
    if cfg.binarize == "fixed":
        raise VaekitError("data.binarize = 'fixed' needs the data in memory; use 'dynamic' with data.stream = true")


def prepare_stream(cfg: DataConfig, device: str | torch.device = "cpu") -> StreamData:
    """An image folder prepared for streaming: splits by a seeded permutation of the files."""
    refuse_fixed_binarisation(cfg)
    p = Path(cfg.name)
    if not p.is_dir():
        raise VaekitError(f"data.stream = true needs a folder of images; '{cfg.name}' is not one")
    files, labels = list_images(p)
    stream = StreamImages(files, labels, cfg)
    # The same splits as `prepare` makes of the folder read into memory (the test split capped at 10,000 images).
    test_idx, val_idx, train_idx = split_indices(len(files), cfg, carve_test=True, test_cap=10000)
    return stream_data(cfg, stream, labels, test_idx, val_idx, train_idx, device)


def stream_data(
    cfg: DataConfig,
    stream: StreamImages,
    labels: np.ndarray | None,
    test_idx: np.ndarray,
    val_idx: np.ndarray,
    train_idx: np.ndarray,
    device: str | torch.device,
) -> StreamData:
    """StreamData over `stream` with the given splits: validation and test read into memory."""
    if len(train_idx) == 0:
        raise VaekitError(f"data '{cfg.name}': no training images left after the test and validation splits")

    def load(idx):  # (N, C, H, W) float in [0, 1], labels
        xs = (
            torch.stack([stream[int(i)][0] for i in idx])
            if len(idx)
            else torch.zeros((0, *stream[0][0].shape), dtype=torch.uint8)
        )
        return xs.float().div(255).to(device), (
            torch.from_numpy(labels[idx]).to(device) if labels is not None else None
        )

    x_val, y_val = load(val_idx)
    x_test, y_test = load(test_idx)
    head, _ = load(train_idx[:1000])
    data = StreamData(
        name=cfg.name,
        kind="image",
        shape=tuple(head.shape[1:]),
        x_train=DiskImages(stream, train_idx, device),
        x_head=head,
        x_val=x_val,
        x_test=x_test,
        y_train=torch.from_numpy(labels[train_idx]).to(device) if labels is not None else None,
        y_val=y_val,
        y_test=y_test,
        dynamic_binarize=cfg.binarize == "dynamic",
        levels=256,
        stream=stream,
        train_index=train_idx,
        workers=cfg.workers,
    )
    return binarize_and_dequantize(data, cfg, "uint8")


# --- raw readers: each returns (x, y, x_test, y_test) numpy arrays, y/test may be None ------------


def read_raw(cfg: DataConfig):
    """Read the named dataset or user path into numpy arrays (x, y, x_test, y_test)."""
    from vaekit.data.sources import find_source

    return find_source(cfg.name).read(cfg)


# --- preparation -------------------------------------------------------------------------------


def _as_layout(x: np.ndarray, source: str) -> tuple[np.ndarray, str]:
    """Bring arrays to (N, C, H, W) for images or (N, D) for vectors."""
    if x.ndim == 2:
        return x, "vector"
    if x.ndim == 3:
        return x[:, None], "image"
    if x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)  # channels-last to channels-first
        return x, "image"
    raise VaekitError(f"{source}: data of shape {x.shape}; expected (N, D), (N, H, W) or (N, H, W, C)")


FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_ABS_VALUE = float(np.sqrt(FLOAT32_MAX))  # 1.8e19: training squares values (Gaussian terms, variances) in float32
MAX_CLASSES = 10_000  # labels are class indices 0..MAX_CLASSES - 1


def _check_values(x: np.ndarray, source: str) -> None:
    """Numeric, non-empty examples with at least one value each, finite and within float32's range
    (the tensors are float32: larger values would become Inf when converted)."""
    if x.dtype.kind not in "biuf":
        raise VaekitError(f"{source}: dtype {x.dtype} is not numeric")
    if len(x) == 0:
        raise VaekitError(f"{source}: holds no examples")
    if x[0].size == 0:
        raise VaekitError(f"{source}: each example holds no values (shape {x.shape})")
    if x.dtype.kind == "f":
        flat = x.reshape(len(x), -1)
        bad = ~np.isfinite(flat).all(1)
        if bad.any():
            raise VaekitError(f"{source}: sample {int(np.flatnonzero(bad)[0])} holds NaN or Inf")
        over = (np.abs(flat) > MAX_ABS_VALUE).any(1)
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise VaekitError(
                f"{source}: sample {i} holds {float(np.abs(flat[i]).max()):.3g}; values beyond ±{MAX_ABS_VALUE:.2g} "
                "overflow the float32 arithmetic of training (their squares are infinite): rescale the data"
            )


def _check_labels(y, n: int, source: str) -> np.ndarray | None:
    """Labels: one whole number per example, from 0 to MAX_CLASSES - 1. Returns them as int64."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.ndim != 1:
        raise VaekitError(f"{source}: labels of shape {y.shape}; expected one label per example, shape ({n},)")
    if len(y) != n:
        raise VaekitError(f"{source}: {len(y)} labels for {n} examples")
    if y.dtype.kind not in "biuf":
        raise VaekitError(f"{source}: labels of dtype {y.dtype} are not numbers")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise VaekitError(f"{source}: labels must be whole numbers (found NaN, Inf or a fraction)")
    if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise VaekitError(
            f"{source}: labels must be class indices from 0 to {MAX_CLASSES - 1}; found {y.min():g} to {y.max():g}"
        )
    return y.astype(np.int64)


def _scale(x_tr: np.ndarray, others: list[np.ndarray], kind: str, scaling: str):
    """Scale to [0, 1] (or standardise) with statistics of the training split only."""
    if x_tr.dtype == np.uint8:
        return [a.astype(np.float32) / 255.0 for a in [x_tr, *others]]
    arrays = [a.astype(np.float32) for a in [x_tr, *others]]
    if scaling == "none":
        return arrays
    if kind == "image":
        lo, hi = float(arrays[0].min()), float(arrays[0].max())
        if lo >= 0.0 and hi <= 1.0:
            return arrays
        return [(a - lo) / max(hi - lo, 1e-12) for a in arrays]
    if scaling == "minmax":
        lo, hi = arrays[0].min(0), arrays[0].max(0)
        return [(a - lo) / np.maximum(hi - lo, 1e-12) for a in arrays]
    mu, sd = arrays[0].mean(0), arrays[0].std(0)
    return [(a - mu) / np.maximum(sd, 1e-12) for a in arrays]


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """8-bit values k/255 -> (k + u) / 256 with u ~ U[0, 1): (B, *shape), values in [0, 1)."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (torch.round(x * 255) + u) / 256


def prepare(cfg: DataConfig, raw=None, device: str | torch.device = "cpu") -> Data:
    """Read (unless `raw` is given), scale, split and binarise; return tensors on `device`
    (a `StreamData` for an image folder with data.stream = true)."""
    from vaekit.data.sources import find_source

    if raw is None:
        source = find_source(cfg.name)
        own = source.prepare(cfg, device)  # rendered (shapes, factor files) or always streamed (CelebA)
        if own is not None:
            return own
        if cfg.stream:
            return prepare_stream(cfg, device)
        raw = source.read(cfg)
    x, y, x_test, y_test = raw
    source = f"data '{cfg.name}'"
    x, kind = _as_layout(np.asarray(x), source)
    _check_values(x, source)
    y = _check_labels(y, len(x), source)
    if x_test is not None:
        x_test, _ = _as_layout(np.asarray(x_test), source + " (test)")
        _check_values(x_test, source + " (test)")
        if x_test.shape[1:] != x.shape[1:]:
            raise VaekitError(f"{source}: test shape {x_test.shape[1:]} differs from train shape {x.shape[1:]}")
        y_test = _check_labels(y_test, len(x_test), source + " (test)")
    test_idx, val_idx, tr_idx = split_indices(len(x), cfg, carve_test=x_test is None)
    n_test = len(test_idx) if x_test is None else len(x_test)
    if len(tr_idx) == 0 or n_test == 0:
        raise VaekitError(
            f"{source}: {len(x)} examples leave {len(tr_idx)} for training and {n_test} for testing; "
            "both need at least one (add data, or lower data.val_size / data.test_size)"
        )
    if x_test is None:  # a test split the model never trains on
        x_test, y_test = x[test_idx], (y[test_idx] if y is not None else None)
    x_tr, x_val, x_te = _scale(x[tr_idx], [x[val_idx], x_test], kind, cfg.scaling)
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)
    to_y = lambda a: None if a is None else torch.from_numpy(np.asarray(a).astype(np.int64)).to(device)
    data = Data(
        name=cfg.name,
        kind=kind,
        shape=tuple(x.shape[1:]),
        x_train=to_t(x_tr),
        x_val=to_t(x_val),
        x_test=to_t(x_te),
        y_train=to_y(y[tr_idx] if y is not None else None),
        y_val=to_y(y[val_idx] if y is not None else None),
        y_test=to_y(y_test),
        dynamic_binarize=cfg.binarize == "dynamic",
        levels=256 if x.dtype == np.uint8 else None,
    )
    return binarize_and_dequantize(data, cfg, str(x.dtype))


def split_indices(n: int, cfg: DataConfig, carve_test: bool, test_cap: int | None = None, ordered: bool = False):
    """Sorted indices (test, val, train) into `n` examples, drawn with data.seed: a test split
    carved first where the data has none (data.test_size, else a tenth, at most `test_cap`), then
    data.limit of the rest, of which data.val_size go to validation (none if that would leave no
    training example). data.limit keeps the first examples of the rest; where the order means
    something (`ordered`: a grid of factors, in which the first examples share a shape) it keeps a
    random subset instead, the rest in the test split's random order."""
    rng = np.random.default_rng(cfg.seed)
    test, rest = np.zeros(0, np.int64), np.arange(n)
    if carve_test:
        perm = rng.permutation(n)
        n_test = min(cfg.test_size, n - 1) if cfg.test_size is not None else min(max(1, n // 10), test_cap or n)
        test, rest = perm[:n_test], perm[n_test:] if ordered else np.sort(perm[n_test:])
    if cfg.limit is not None:
        rest = rest[: cfg.limit]
    if not ordered:
        rest = rest[rng.permutation(len(rest))]
    n_val = cfg.val_size if len(rest) > cfg.val_size else 0
    return np.sort(test), np.sort(rest[:n_val]), np.sort(rest[n_val:])


def binarize_and_dequantize(data: Data, cfg: DataConfig, dtype: str) -> Data:
    """Apply data.binarize (fixed: the training set once; both: validation and test once, so their
    scores are comparable) and data.dequantize (validation and test once; sets Data.dequantized), with seeded
    generators."""
    source, device = f"data '{cfg.name}'", data.device
    if cfg.binarize != "none":
        lo, hi = float(data.x_check.min()), float(data.x_check.max())
        if lo < 0 or hi > 1:
            raise VaekitError(f"{source}: binarize needs values in [0, 1], found [{lo:.3g}, {hi:.3g}]")
        g = torch.Generator(device=device).manual_seed(cfg.seed)
        if cfg.binarize == "fixed":
            data.x_train = torch.bernoulli(data.x_train, generator=g)
        data.x_val = torch.bernoulli(data.x_val, generator=g)
        data.x_test = torch.bernoulli(data.x_test, generator=g)
        data.levels = 2
    if cfg.dequantize == "uniform":
        if data.levels != 256:
            raise VaekitError(
                f"{source}: data.dequantize = 'uniform' needs 8-bit (uint8) data"
                + (" that is not binarised" if data.levels == 2 else f"; this data is {dtype}")
            )
        g = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        data.x_val, data.x_test = dequantize(data.x_val, g), dequantize(data.x_test, g)
        data.dequantized = True
    return data


def batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """Index tensors for one pass over `n` examples; the last batch may be short."""
    order = (
        torch.randperm(n, generator=generator, device="cpu").to(device) if shuffle else torch.arange(n, device=device)
    )
    yield from order.split(batch_size)


def describe(cfg: DataConfig) -> dict:
    """Shape, count, value range and label counts of a dataset, as plain data (for `data info`)."""
    from vaekit.data.sources import find_source

    reader = find_source(cfg.name)
    own = reader.describe(cfg)  # generated or factor data: described without reading it all
    if own is not None:
        return own
    x, y, x_test, y_test = reader.read(cfg)
    source = f"data '{cfg.name}'"
    x, kind = _as_layout(np.asarray(x), source)
    _check_values(x, source)
    y = _check_labels(y, len(x), source)
    info = {
        "name": cfg.name,
        "kind": kind,
        "shape": list(x.shape[1:]),
        "dtype": str(x.dtype),
        "train_count": int(len(x)),
        "test_count": int(len(x_test)) if x_test is not None else None,
        "min": float(x.min()),
        "max": float(x.max()),
    }
    if y is not None:
        labels, counts = np.unique(np.asarray(y), return_counts=True)
        info["labels"] = {str(int(k)): int(c) for k, c in zip(labels, counts)}
    return info


# --- what a run may point at -------------------------------------------------------------------

DATA_RECORD = "data.json"  # in a run directory: the fingerprint of the data its training read


def fingerprint(cfg: DataConfig, budget: int = MAX_FOLDER_ENTRIES) -> dict | None:
    """What a run records of the data its training read (None for a dataset by name, which is
    checked against its own published checksums): for a file its size and SHA-256; for an image
    folder the number of images, their bytes, the entries listed and a SHA-256 of every image's
    relative path and size (image contents are not hashed: that would read the folder twice)."""
    import hashlib

    from vaekit.data.sources import dataset_name

    if dataset_name(cfg.name) is not None:
        return None
    p = Path(cfg.name)
    if p.is_dir():
        files, entries = walk_images(p, budget)
        h, total = hashlib.sha256(), 0
        for f in files:
            size = f.stat().st_size
            total += size
            h.update(f"{f.relative_to(p)}\0{size}\n".encode())
        return {
            "path": str(p),
            "kind": "folder",
            "images": len(files),
            "bytes": total,
            "entries": entries,
            "sha256": h.hexdigest(),
        }
    regular_file(p)
    with open(p, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"path": str(p), "kind": "file", "bytes": p.stat().st_size, "sha256": digest}


def check_recorded(run: Path, cfg: DataConfig, instead: str) -> bool:
    """Refuse to read a data path that run directory `run` records unless it is the data the run's
    training read (or lie inside the run directory): its fingerprint must equal the one in
    RUN/data.json. A run directory may come
    from anyone; this way the only files it can make vaekit read are the ones it was trained on
    (listing at most as many entries as training did), and data changed since training is not
    silently evaluated as if it were the same. `instead` names the option that passes the data
    explicitly (quoted in the error). Returns True when the data was compared with its record
    (False: a named dataset, or data inside the run directory)."""
    import json

    from vaekit.data.sources import dataset_name

    if dataset_name(cfg.name) is not None:
        return False
    root, target = run.resolve(), Path(cfg.name).resolve()
    if root in target.parents:  # data shipped inside the run directory is the run's own
        return False
    record = run / DATA_RECORD
    fix = f"to read it anyway, pass {instead}{cfg.name}"
    try:
        check_regular_file(record)
        saved = json.loads(record.read_text())
        budget = int(saved["entries"]) if saved["kind"] == "folder" else MAX_FOLDER_ENTRIES
        path = saved["path"]
    except FileNotFoundError:
        raise VaekitError(
            f"run '{run}' points at data '{cfg.name}' but holds no record of it ({record}); {fix}"
        ) from None
    except (ValueError, TypeError, KeyError, OSError):
        raise VaekitError(f"'{record}' is not a data record vaekit wrote; {fix}") from None
    if path != cfg.name:
        raise VaekitError(f"'{record}' records data '{path}', config.json '{cfg.name}'; {fix}")
    try:
        if saved["kind"] == "file" and Path(cfg.name).stat().st_size != saved["bytes"]:
            raise VaekitError("another size")  # known without reading the file
        now = fingerprint(cfg, budget=min(max(budget, 1), MAX_FOLDER_ENTRIES))
    except (VaekitError, OSError, KeyError):
        now = None
    if now != saved:
        raise VaekitError(
            f"data '{cfg.name}' is not the data run '{run}' was trained on (it no longer matches {record}); {fix}"
        )
    return True
