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
from vaekit.errors import VaekitError, check_regular_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


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
        x = self.x_train[idx]
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


class DiskImages:
    """The training split of a streamed folder, left on disk: `len()` is its size and `x[idx]`
    (idx: (B,) indices) reads those images, (B, C, H, W) float in [0, 1] on `device`, as stored
    (before any per-batch binarisation or dequantisation)."""

    def __init__(self, stream: StreamImages, index: np.ndarray, device: torch.device | str):
        self.stream, self.index, self.device = stream, index, torch.device(device)
        self.shape = (len(index), *stream.shape_chw)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Images at positions idx (B,), or a slice of positions as a tensor takes it."""
        pos = self.index[idx if isinstance(idx, slice) else torch.as_tensor(idx).cpu().numpy()]
        return torch.stack([self.stream[int(i)][0] for i in pos]).to(self.device).float() / 255

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
                if self.dynamic_binarize:
                    x = torch.bernoulli(x)
                if self.dequantized:
                    x = dequantize(x)
                yield x, (y.to(self.device) if self.y_train is not None else None)
        except VaekitError as e:  # raised in a worker: the original one-line message is its last line
            raise VaekitError(str(e).strip().splitlines()[-1].removeprefix("vaekit.errors.VaekitError: ")) from None


@dataclass
class RenderedData(OnDemandData):
    """Data with known factors (shapes, or a file of images with factors): training images are made
    as batches are needed (`x_train` is a `shapes.RenderedImages`), so memory does not grow with the
    grid; validation and test splits are in memory."""


def prepare_shapes(cfg: DataConfig, device: str | torch.device = "cpu") -> RenderedData:
    """The shapes grid (data.shapes_grid, data.image_size); see `prepare_factors`."""
    from vaekit.data.shapes import FULL_GRID, ShapesGrid

    return prepare_factors(
        cfg, ShapesGrid(tuple(cfg.shapes_grid or FULL_GRID), tuple(cfg.image_size or (64, 64))), device
    )


def prepare_factors(cfg: DataConfig, truth: Any, device: str | torch.device = "cpu") -> RenderedData:
    """Data with known factors (`shapes.ShapesGrid`, or `shapes.FactorArrays` from an .npz), split by
    data.seed, training images made as batches need them. Labels are the first factor's codes (the
    shape, for shapes and dSprites); `ground_truth` is `truth`, for the disentanglement metrics."""
    from vaekit.data.shapes import RenderedImages, shapes_splits

    binary = truth.binary  # shapes and dSprites: 0/1 already
    if cfg.dequantize != "none" or cfg.binarize == "fixed":
        raise VaekitError(
            f"data '{cfg.name}': its images are drawn as batches need them; data.dequantize and "
            "data.binarize = 'fixed' need the data in memory (data.binarize = 'dynamic' works)"
        )
    test, val, train = shapes_splits(len(truth), cfg.seed, cfg.test_size, cfg.val_size, cfg.limit)
    render = lambda idx: truth.images(idx).float().to(device)
    label = lambda idx: torch.from_numpy(truth.codes(idx)[:, 0]).to(device)
    data = RenderedData(
        name=cfg.name,
        kind="image",
        shape=tuple(truth.shape),
        x_train=RenderedImages(truth, train, device),
        x_head=render(train[:1000]),
        x_val=render(val),
        x_test=render(test),
        y_train=label(train),
        y_val=label(val),
        y_test=label(test),
        levels=2 if binary else 256,
        ground_truth=truth,
        dynamic_binarize=cfg.binarize == "dynamic" and not binary,
    )
    if data.dynamic_binarize:  # validation and test binarised once, seeded, as for data in memory
        g = torch.Generator(device=data.device).manual_seed(cfg.seed)
        data.x_val, data.x_test, data.levels = (
            torch.bernoulli(data.x_val, generator=g),
            torch.bernoulli(data.x_test, generator=g),
            2,
        )
    return data


def _factor_file(p: Path):
    """`shapes.FactorArrays` of an .npz that holds factors (dSprites' file, or x and factors), else None."""
    from vaekit.data.shapes import read_factor_file

    try:
        with np.load(p, allow_pickle=False) as f:
            return read_factor_file(p, set(f.files), lambda k: f[k])
    except VaekitError:
        raise
    except Exception as e:  # untrusted bytes, as in _read_npz_or_npy
        raise VaekitError(f"cannot read '{p}': {type(e).__name__}: {str(e)[:200]}") from None


def prepare_stream(cfg: DataConfig, device: str | torch.device = "cpu") -> StreamData:
    """An image folder prepared for streaming: splits by a seeded permutation of the files (or,
    for CelebA, its official partition)."""
    from vaekit.data.named import canonical, celeba_files

    if cfg.binarize == "fixed":
        raise VaekitError("data.binarize = 'fixed' needs the data in memory; use 'dynamic' with data.stream = true")
    if canonical(cfg.name) == "celeba":
        import dataclasses

        files, split = celeba_files(cfg.data_dir)
        # The usual 64x64 faces of VAE papers unless configured otherwise: centre 148x148, resized.
        cfg = dataclasses.replace(cfg, crop=cfg.crop or [148, 148], image_size=cfg.image_size or [64, 64])
        pick = lambda k, cap: np.flatnonzero(split == k)[:cap]
        return _stream_data(
            cfg,
            StreamImages(files, None, cfg),
            None,
            pick(2, cfg.test_size),
            pick(1, cfg.val_size),
            pick(0, cfg.limit),
            device,
        )
    p = Path(cfg.name)
    if not p.is_dir():
        raise VaekitError(f"data.stream = true needs a folder of images; '{cfg.name}' is not one")
    files, labels = list_images(p)
    stream = StreamImages(files, labels, cfg)
    # The same splits as `prepare` makes of the folder read into memory (the test split capped at 10,000 images).
    test_idx, val_idx, train_idx = split_indices(len(files), cfg, carve_test=True, test_cap=10000)
    return _stream_data(cfg, stream, labels, test_idx, val_idx, train_idx, device)


def _stream_data(
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
    return _binarize_and_dequantize(data, cfg, "uint8")


# --- raw readers: each returns (x, y, x_test, y_test) numpy arrays, y/test may be None ------------


def _read_npz_or_npy(p: Path):
    try:
        if p.suffix == ".npy":
            return np.load(p, allow_pickle=False), None, None, None
        with np.load(p, allow_pickle=False) as f:
            keys = set(f.files)
            for xk, yk, xt, yt in (
                ("x_train", "y_train", "x_test", "y_test"),
                ("x", "y", None, None),
                ("data", "labels", None, None),
                ("arr_0", "arr_1", None, None),
            ):
                if xk in keys:
                    get = lambda k: f[k] if k and k in keys else None
                    return f[xk], get(yk), get(xt), get(yt)
            raise VaekitError(
                f"'{p}': no data array; expected key 'x_train', 'x', 'data' or 'arr_0', found {sorted(keys)}"
            )
    except VaekitError:
        raise
    except Exception as e:  # untrusted bytes: zipfile/zlib/numpy raise many kinds (bad zip, encrypted, truncated)
        raise VaekitError(f"cannot read '{p}': {type(e).__name__}: {str(e)[:200]}") from None


def _read_csv(p: Path):
    try:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise VaekitError(f"cannot read '{p}': {e}") from None
    if not lines:
        raise VaekitError(f"'{p}' is empty")
    rows = [ln.split(",") for ln in lines]
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        rows = rows[1:]  # a header row
    width = len(rows[0]) if rows else 0
    out = np.empty((len(rows), width), np.float64)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise VaekitError(f"'{p}' row {i + 1}: {len(r)} columns, expected {width}")
        try:
            out[i] = [float(c) for c in r]
        except ValueError:
            raise VaekitError(f"'{p}' row {i + 1}: non-numeric cell in {r[:8]!r}"[:300]) from None
    if len(out) == 0:
        raise VaekitError(f"'{p}' has no data rows")
    big = np.isfinite(out) & (np.abs(out) > np.finfo(np.float32).max)
    if big.any():
        i, j = np.argwhere(big)[0]
        raise VaekitError(f"'{p}' data row {i + 1}, column {j + 1}: {out[i, j]:g} does not fit in float32")
    return out.astype(np.float32), None, None, None


def _regular(p: Path) -> None:
    """Refuse a device, FIFO or socket where a data file should be: reading one blocks for ever
    (a FIFO) or never ends (/dev/zero)."""
    check_regular_file(p, "data")
    if not p.exists():
        raise VaekitError(f"data '{p}' does not exist")


MAX_FOLDER_ENTRIES = 10_000_000  # files and folders an image-folder listing may visit


def _walk_images(p: Path, budget: int = MAX_FOLDER_ENTRIES) -> tuple[list[Path], int]:
    """The image files under folder `p` (sorted, as `p.rglob` lists them: links to folders are not
    followed, unreadable sub-folders are skipped) and the number of entries visited. Refuses a tree
    of more than `budget` entries instead of listing it to the end (a path like '/' would)."""
    import os

    files, seen, stack = [], 0, [p]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    seen += 1
                    if seen > budget:
                        raise VaekitError(
                            f"folder '{p}' holds more than {budget:,} files and folders; "
                            "an image folder holds images, in class sub-folders or not"
                        )
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    if Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                        files.append(Path(e.path))
        except PermissionError:
            continue
    return sorted(files), seen


def list_images(p: Path, budget: int = MAX_FOLDER_ENTRIES) -> tuple[list[Path], np.ndarray | None]:
    """The image files of a folder (sorted) and their labels from class sub-folders, if any."""
    files, _ = _walk_images(p, budget)
    for f in files:
        _regular(f)
    if not files:
        raise VaekitError(f"folder '{p}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    parents = sorted({f.parent for f in files})
    labels = None
    if len(parents) > 1 and all(f.parent != p for f in files):
        index = {d: i for i, d in enumerate(parents)}
        labels = np.array([index[f.parent] for f in files], np.int64)
    return files, labels


def read_image(f: Path, cfg: DataConfig, grey: bool | None = None) -> np.ndarray:
    """One image file as uint8 (H, W) or (H, W, 3): converted to grey or RGB (`grey`, else
    data.grayscale, else as found), centre-cropped to data.crop, resized to data.image_size."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            # A header claiming a huge image (a decompression bomb) is refused, not merely warned about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                im.load()
                if grey is None:
                    grey = cfg.grayscale if cfg.grayscale is not None else im.mode in ("L", "1", "I;16", "I", "LA")
                im = im.convert("L" if grey else "RGB")
                if cfg.crop is not None:
                    h, w = cfg.crop
                    if im.height < h or im.width < w:
                        raise VaekitError(
                            f"image '{f}' is {im.height}x{im.width}, smaller than data.crop = {list(cfg.crop)}"
                        )
                    top, left = (im.height - h) // 2, (im.width - w) // 2
                    im = im.crop((left, top, left + w, top + h))
                if cfg.image_size is not None:
                    im = im.resize((cfg.image_size[1], cfg.image_size[0]), Image.BILINEAR)
                return np.asarray(im, np.uint8)
    except VaekitError:
        raise
    except Exception as e:  # untrusted bytes: PIL's decoders raise OSError, SyntaxError, struct.error, ...
        raise VaekitError(f"cannot read image '{f}': {type(e).__name__}: {str(e)[:200]}") from None


def _shape_mismatch(f: Path, shape: tuple, first: Path, first_shape: tuple) -> VaekitError:
    return VaekitError(
        f"image '{f}' has shape {shape}, '{first}' has {first_shape}; "
        "set data.image_size = [H, W] to resize (and data.grayscale to fix the mode)"
    )


def _read_image_folder(p: Path, cfg: DataConfig):
    files, labels = list_images(p)
    images = []
    for f in files:
        a = read_image(f, cfg)
        if images and a.shape != images[0].shape:
            raise _shape_mismatch(f, a.shape, files[0], images[0].shape)
        images.append(a)
    return np.stack(images), labels, None, None


class StreamImages(torch.utils.data.Dataset):
    """Image files read on demand (in DataLoader workers): item i is (x, y) with x the uint8 image
    (C, H, W) and y its label (-1 without labels). Every image must have the first one's shape and
    mode, after the configured crop and resize."""

    def __init__(self, files: list[Path], labels: np.ndarray | None, cfg: DataConfig):
        self.files, self.labels, self.cfg = files, labels, cfg
        first = read_image(files[0], cfg)
        self.grey, self.shape = first.ndim == 2, first.shape

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape_chw(self) -> tuple[int, ...]:
        return (1, *self.shape) if self.grey else (self.shape[2], self.shape[0], self.shape[1])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        a = read_image(self.files[i], self.cfg, grey=self.grey)
        if a.shape != self.shape:
            raise _shape_mismatch(self.files[i], a.shape, self.files[0], self.shape)
        x = torch.from_numpy(a.copy())  # PIL's buffer is read-only
        return (x[None] if self.grey else x.permute(2, 0, 1)), int(self.labels[i]) if self.labels is not None else -1


def read_raw(cfg: DataConfig):
    """Read the named dataset or user path into numpy arrays (x, y, x_test, y_test)."""
    from vaekit.data.named import SPECS, is_named, load_dataset

    if is_named(cfg.name):
        from vaekit.data.mnist import load_mnist

        m = load_mnist(cfg.data_dir) if cfg.name.lower() == "mnist" else load_dataset(cfg.name, cfg.data_dir)
        return m["x_train"], m["y_train"], m["x_test"], m["y_test"]
    p = Path(cfg.name)
    if not p.exists():
        raise VaekitError(
            f"data '{cfg.name}' is neither a dataset name ({', '.join(['mnist', *SPECS])}) nor an existing path"
        )
    if not p.is_dir():
        _regular(p)
    if p.is_dir():
        return _read_image_folder(p, cfg)
    if p.suffix in (".npy", ".npz"):
        return _read_npz_or_npy(p)
    if p.name.endswith(("-ubyte", "-ubyte.gz", ".idx", ".idx.gz")):
        from vaekit.data.downloads import read_idx

        return read_idx(p), None, None, None
    if p.suffix == ".csv":
        return _read_csv(p)
    raise VaekitError(
        f"data file '{p}': unsupported type '{p.suffix}'; allowed: .npy, .npz, .csv, an IDX file (*-ubyte, *.idx) or a "
        f"folder of images"
    )


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
    from vaekit.data.named import canonical

    if cfg.name.lower() == "shapes" and raw is None:  # generated, rendered as training needs it
        return prepare_shapes(cfg, device)
    if raw is None and cfg.name.lower().endswith(".npz") and Path(cfg.name).is_file():
        _regular(Path(cfg.name))
        truth = _factor_file(Path(cfg.name))
        if truth is not None:  # images with their factors (dSprites' file or x + factors)
            return prepare_factors(cfg, truth, device)
    if (cfg.stream or canonical(cfg.name) == "celeba") and raw is None:  # CelebA is always streamed
        return prepare_stream(cfg, device)
    x, y, x_test, y_test = raw if raw is not None else read_raw(cfg)
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
    return _binarize_and_dequantize(data, cfg, str(x.dtype))


def split_indices(n: int, cfg: DataConfig, carve_test: bool, test_cap: int | None = None):
    """Sorted indices (test, val, train) into `n` examples, drawn with data.seed: a test split
    carved first where the data has none (data.test_size, else a tenth, at most `test_cap`), then
    the first data.limit of the rest, of which data.val_size go to validation (none if that would
    leave no training example)."""
    rng = np.random.default_rng(cfg.seed)
    test, rest = np.zeros(0, np.int64), np.arange(n)
    if carve_test:
        perm = rng.permutation(n)
        n_test = min(cfg.test_size, n - 1) if cfg.test_size is not None else min(max(1, n // 10), test_cap or n)
        test, rest = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    if cfg.limit is not None:
        rest = rest[: cfg.limit]
    n_val = cfg.val_size if len(rest) > cfg.val_size else 0
    perm = rng.permutation(len(rest))
    return test, np.sort(rest[perm[:n_val]]), np.sort(rest[perm[n_val:]])


def _binarize_and_dequantize(data: Data, cfg: DataConfig, dtype: str) -> Data:
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
    if cfg.name.lower() == "shapes":  # generated: described by its grid, nothing is read
        from vaekit.data.shapes import FACTORS, FULL_GRID, SHAPES, ShapesGrid

        grid = ShapesGrid(tuple(cfg.shapes_grid or FULL_GRID), tuple(cfg.image_size or (64, 64)))
        per_shape = len(grid) // grid.sizes[0]
        return {
            "name": "shapes",
            "kind": "image",
            "shape": list(grid.shape),
            "dtype": "uint8",
            "train_count": len(grid),
            "test_count": None,
            "min": 0.0,
            "max": 1.0,
            "labels": {str(k): per_shape for k in range(grid.sizes[0])},
            "factors": {f: n for f, n in zip(FACTORS, grid.sizes)},
            "shapes": list(SHAPES[: grid.sizes[0]]),
        }
    if cfg.name.lower().endswith(".npz") and Path(cfg.name).is_file():
        _regular(Path(cfg.name))
        truth = _factor_file(Path(cfg.name))
        if truth is not None:  # images with factors: described, and checked, as training reads them
            head = truth.images(np.arange(min(len(truth), 1000)))
            return {
                "name": cfg.name,
                "kind": "image",
                "shape": list(truth.shape),
                "dtype": str(truth.raw.dtype),
                "train_count": len(truth),
                "test_count": None,
                "min": float(head.min()),
                "max": float(head.max()),
                "factors": {name: n for name, n in zip(truth.names, truth.sizes)},
            }
    x, y, x_test, y_test = read_raw(cfg)
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

    from vaekit.data.named import is_named

    if is_named(cfg.name):
        return None
    p = Path(cfg.name)
    if p.is_dir():
        files, entries = _walk_images(p, budget)
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
    _regular(p)
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

    from vaekit.data.named import is_named

    if is_named(cfg.name):
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
