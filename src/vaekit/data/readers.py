"""Readers of the user's own files: arrays (.npy/.npz), CSV and image folders, as numpy arrays.

Each refuses what it cannot read in one line that names the file. The file formats of
`vaekit.data.formats` read through these; `vaekit.data.prepared` lists and streams image folders
with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaekit.config import DataConfig
from vaekit.errors import VaekitError, check_regular_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def read_arrays_file(p: Path):
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


def read_csv(p: Path):
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
            raise VaekitError(
                f"'{p}' row {i + 1}: non-numeric cell in {r[:8]!r}"[:300]
                + "; a table with text or empty cells trains as a [table] (see docs/tables.md)"
            ) from None
    if len(out) == 0:
        raise VaekitError(f"'{p}' has no data rows")
    big = np.isfinite(out) & (np.abs(out) > np.finfo(np.float32).max)
    if big.any():
        i, j = np.argwhere(big)[0]
        raise VaekitError(f"'{p}' data row {i + 1}, column {j + 1}: {out[i, j]:g} does not fit in float32")
    return out.astype(np.float32), None, None, None


def regular_file(p: Path) -> None:
    """Refuse a device, FIFO or socket where a data file should be: reading one blocks for ever
    (a FIFO) or never ends (/dev/zero)."""
    check_regular_file(p, "data")
    if not p.exists():
        raise VaekitError(f"data '{p}' does not exist")


MAX_FOLDER_ENTRIES = 10_000_000  # files and folders an image-folder listing may visit


def walk_images(p: Path, budget: int = MAX_FOLDER_ENTRIES) -> tuple[list[Path], int]:
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
    files, _ = walk_images(p, budget)
    for f in files:
        regular_file(f)
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


def read_image_folder(p: Path, cfg: DataConfig):
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
