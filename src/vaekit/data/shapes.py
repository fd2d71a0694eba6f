"""`shapes`: binary images of a square, an ellipse or a heart with known generative factors, in the
spirit of dSprites (Matthey et al. 2017), rendered on the fly so that nothing is downloaded and
memory stays flat.

The factors, each a grid of evenly spaced values, every combination exactly once:

=============  =====  ==========================================================================
factor         size   values
=============  =====  ==========================================================================
shape          3      square, ellipse, heart
scale          6      0.5 ... 1 (the shape's half-size is 0.16 of the image times the scale)
orientation    40     [0, P) in steps of P / 40, P the shape's symmetry period: pi/2 for the
                      square, pi for the ellipse, 2 pi for the heart
pos_x, pos_y   32     the centre, 0.23 ... 0.77 of the image's width / height
=============  =====  ==========================================================================

3 x 6 x 40 x 32 x 32 = 737,280 images of 64 x 64. dSprites turns every shape through 2 pi, so its
squares repeat every quarter turn and its ellipses every half turn, and the first and last of its
40 orientations (0 and 2 pi) are the same image; here each shape turns through its own period
once, so that no two combinations draw the same image. A smaller grid and resolution come from
``data.shapes_grid`` and ``data.image_size``.

A pixel is on when its centre lies inside the shape: deterministic, with no randomness anywhere.
Examples are numbered in row-major order of the factors (shape slowest, pos_y fastest), as in
dSprites' file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from vaekit.data.prepared import LazyImages, RenderedData, binarize_and_dequantize, split_indices
from vaekit.data.sources import DataSource
from vaekit.errors import VaekitError

if TYPE_CHECKING:
    from vaekit.config import DataConfig

FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPES = ("square", "ellipse", "heart")
FULL_GRID = (3, 6, 40, 32, 32)
PERIODS = (math.pi / 2, math.pi, 2 * math.pi)  # each shape's rotational symmetry
HALF_SIZE = 0.16  # a scale-1 shape's half-size, as a fraction of the image
POS_RANGE = (0.23, 0.77)  # a rotated scale-1 square (half-diagonal 0.226) stays inside the image
CHUNK = 2048  # images rendered at once: (CHUNK, H, W) floats at a time


def _levels(n: int, lo: float, hi: float) -> torch.Tensor:
    """n evenly spaced values from lo to hi (hi alone when n = 1)."""
    return torch.linspace(lo, hi, n, dtype=torch.float64) if n > 1 else torch.tensor([hi], dtype=torch.float64)


MAX_SIDE = 256  # shapes' largest resolution: 4 x dSprites' 64, and 1,000 images of it take 262 MB


@dataclass(frozen=True)
class ShapesGrid:
    """The factor grid and the renderer. `sizes`: values per factor (shape, scale, orientation,
    pos_x, pos_y); `resolution`: (H, W)."""

    sizes: tuple[int, ...] = FULL_GRID
    resolution: tuple[int, int] = (64, 64)
    binary: ClassVar[bool] = True  # 0/1 images

    def __post_init__(self):
        if len(self.sizes) != 5 or not 1 <= self.sizes[0] <= 3 or min(self.sizes) < 1:
            raise VaekitError(
                f"config key 'data.shapes_grid': got {list(self.sizes)!r}, expected 5 sizes "
                "[shapes (1-3), scales, orientations, x positions, y positions], each >= 1"
            )
        if len(self.resolution) != 2 or not 8 <= min(self.resolution) <= max(self.resolution) <= MAX_SIDE:
            raise VaekitError(
                f"config key 'data.image_size': got {list(self.resolution)!r}; shapes needs [H, W], each "
                f"from 8 to {MAX_SIDE} (the first 1,000 training images are drawn at once)"
            )

    def __len__(self) -> int:
        return math.prod(self.sizes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image: (1, H, W)."""
        return (1, *self.resolution)

    def codes(self, index: np.ndarray | torch.Tensor) -> np.ndarray:
        """The factor codes (N, 5) int64 (each in 0..size-1) of examples `index` (N,)."""
        return np.stack(np.unravel_index(np.asarray(index, dtype=np.int64), self.sizes), axis=1)

    def index(self, codes: np.ndarray) -> np.ndarray:
        """The example numbers (N,) of factor codes (N, 5): the inverse of `codes`."""
        return np.ravel_multi_index(tuple(np.asarray(codes, dtype=np.int64).T), self.sizes)

    def values(self, codes: np.ndarray) -> np.ndarray:
        """The factors' values (N, 5) float64: shape id, scale, orientation (radians), pos_x, pos_y."""
        c = torch.as_tensor(np.asarray(codes, dtype=np.int64))
        scale = _levels(self.sizes[1], 0.5, 1.0)[c[:, 1]]
        period = torch.tensor(PERIODS, dtype=torch.float64)[c[:, 0]]
        angle = period * c[:, 2] / self.sizes[2]
        px, py = (_levels(n, *POS_RANGE)[c[:, i]] for i, n in ((3, self.sizes[3]), (4, self.sizes[4])))
        return torch.stack([c[:, 0].double(), scale, angle, px, py], 1).numpy()

    def render(self, codes: np.ndarray) -> torch.Tensor:
        """The images of factor codes (N, 5): (N, 1, H, W) uint8, 0 or 1."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, 5)
        out = torch.empty((len(codes), 1, *self.resolution), dtype=torch.uint8)
        for s in range(0, len(codes), CHUNK):
            out[s : s + CHUNK, 0] = self._draw(self.values(codes[s : s + CHUNK]))
        return out

    def images(self, index: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The images of examples `index` (N,): (N, 1, H, W) uint8."""
        return self.render(self.codes(index))

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n example numbers, uniformly: every factor uniform and independent. (n,)"""
        return rng.integers(0, len(self), n)

    def draw_fixed(self, factor: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n example numbers sharing one value of `factor` (that of the first), the others uniform. (n,)"""
        codes = np.stack([rng.integers(0, size, n) for size in self.sizes], 1)
        codes[:, factor] = codes[0, factor]
        return self.index(codes)

    def _draw(self, v: np.ndarray) -> torch.Tensor:
        """(N, 5) factor values -> (N, H, W) uint8 masks. Only a window around each centre that holds
        any turn of the largest shape is computed, and each shape's test only for its own images."""
        h, w = self.resolution
        n, unit = len(v), min(h, w)
        v = torch.as_tensor(v, dtype=torch.float32)
        win = min(h, w, math.ceil(2 * HALF_SIZE * math.sqrt(2) * unit) + 2)  # pixels each side of the window
        top = (v[:, 4] * h - win / 2).floor().long().clamp(0, h - win)  # (N,) the window's first row
        left = (v[:, 3] * w - win / 2).floor().long().clamp(0, w - win)  # (N,) and first column
        r = torch.arange(win)
        rows, cols = top[:, None] + r, left[:, None] + r  # (N, win) pixel rows / columns of the window
        dy = ((rows.float() + 0.5) / h - v[:, 4, None]) * h / unit  # from the centre, in square units: (N, win)
        dx = ((cols.float() + 0.5) / w - v[:, 3, None]) * w / unit
        cos, sin = torch.cos(v[:, 2])[:, None, None], torch.sin(v[:, 2])[:, None, None]
        half = (HALF_SIZE * v[:, 1])[:, None, None]
        u = (cos * dx[:, None, :] + sin * dy[:, :, None]) / half  # the shape's own frame: (N, win, win)
        t = (-sin * dx[:, None, :] + cos * dy[:, :, None]) / half
        mask = torch.zeros((n, win, win), dtype=torch.bool)
        for kind, inside in enumerate(_INSIDE):
            sel = v[:, 0] == kind
            if sel.any():
                mask[sel] = inside(u[sel], t[sel])
        out = torch.zeros((n, h, w), dtype=torch.uint8)
        out[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = mask.to(torch.uint8)
        return out


def _square(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), t.abs()) <= 0.8


def _ellipse(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return u**2 + (t / 0.5) ** 2 <= 1


def _heart(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(x^2 + y^2 - 1)^3 - x^2 y^3 <= 0; image rows grow downwards, so y = -t puts the lobes on top."""
    x, y = 1.1 * u, -1.1 * t + 0.15
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


_INSIDE = (_square, _ellipse, _heart)


class RenderedImages(LazyImages):
    """A split of a grid of factors, drawn when indexed: (B, 1, H, W) float 0/1 for shapes."""

    def __init__(self, grid: ShapesGrid, index: np.ndarray, device: torch.device | str = "cpu"):
        super().__init__(np.asarray(index, dtype=np.int64), grid.shape, device)
        self.grid = grid

    def _make(self, rows: np.ndarray) -> torch.Tensor:
        return self.grid.images(rows).to(self.device).float()

    def to(self, device: torch.device | str) -> RenderedImages:
        return RenderedImages(self.grid, self.index, device)


class FactorArrays:
    """Images held with their factors, e.g. dSprites' file or a user's .npz: the same interface as
    `ShapesGrid` (numbered examples, their factor codes and images, uniform and one-factor-fixed
    draws). images: (N, C, H, W) uint8 (0/1, or 0-255) or float in [0, 1], kept as given and made
    float in [0, 1] when indexed; factors: (N, F) values of any kind, coded 0..size-1 in sorted order."""

    def __init__(
        self,
        images: np.ndarray,
        factors: np.ndarray,
        names: tuple[str, ...] | None = None,
        where: str = "images with factors",
    ):
        factors = np.asarray(factors)
        if images.dtype.kind not in "buif":
            raise VaekitError(f"{where}: images of dtype {images.dtype} are not numeric")
        if len(images) < 2:
            raise VaekitError(f"{where}: {len(images)} examples; training and testing both need at least one")
        if images.dtype.kind == "f" and not np.isfinite(images).all():
            raise VaekitError(f"{where}: images hold NaN or Inf")
        if factors.ndim != 2 or len(factors) != len(images):
            raise VaekitError(
                f"{where}: factors: expected an (N, F) array for {len(images)} images, got shape {factors.shape}"
            )
        if factors.shape[1] == 0 or factors.dtype.kind not in "buifUS":
            raise VaekitError(
                f"{where}: factors of shape {factors.shape} and dtype {factors.dtype}; expected at least one "
                "column of numbers or strings"
            )
        if factors.dtype.kind == "f" and not np.isfinite(factors).all():
            raise VaekitError(f"{where}: factors hold NaN or Inf; each factor takes a finite set of values")
        if images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        self.raw = images
        top = images.max(initial=0)
        self.scale = 255.0 if images.dtype == np.uint8 and top > 1 else 1.0
        self.binary = images.dtype.kind in "bu" and top <= 1  # 0/1 already (dSprites)
        if images.dtype.kind == "f" and (images.min(initial=0) < 0 or top > 1):
            raise VaekitError(f"{where}: float values must lie in [0, 1], found [{images.min():.3g}, {top:.3g}]")
        cols = [np.unique(factors[:, k], return_inverse=True) for k in range(factors.shape[1])]
        self._codes = np.stack([inv.reshape(-1) for _, inv in cols], 1).astype(np.int64)
        self.sizes = tuple(len(u) for u, _ in cols)
        self.names = names or tuple(f"factor_{k}" for k in range(len(self.sizes)))
        # for each factor, the examples grouped by value: draw_fixed picks within one group
        self._groups = [
            np.split(
                np.argsort(self._codes[:, k], kind="stable"),
                np.cumsum(np.bincount(self._codes[:, k], minlength=n))[:-1],
            )
            for k, n in enumerate(self.sizes)
        ]

    def __len__(self) -> int:
        return len(self.raw)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.raw.shape[1:])

    def codes(self, rows: np.ndarray) -> np.ndarray:
        return self._codes[np.asarray(rows, dtype=np.int64)]

    def images(self, rows: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) float in [0, 1]."""
        return torch.from_numpy(np.ascontiguousarray(self.raw[np.asarray(rows, dtype=np.int64)])).float() / self.scale

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(self), n)

    def draw_fixed(self, factor: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n examples drawn among those sharing the value of `factor` of a random example: for a complete
        grid (every combination once) the other factors are then uniform, as for `ShapesGrid`."""
        group = self._groups[factor][self._codes[rng.integers(len(self)), factor]]
        return group[rng.integers(0, len(group), n)]


def read_factor_file(path, keys: set[str], load) -> FactorArrays | None:
    """The images and factors of an .npz: dSprites' layout (imgs (N, 64, 64), latents_classes (N, 6),
    whose constant colour is dropped) or vaekit's (x or images, and factors (N, F)); None when the
    file has no factors. Each array is checked before it is used (VaekitError naming the file)."""
    if {"imgs", "latents_classes"} <= keys:
        imgs, latents = load("imgs"), load("latents_classes")
        if imgs.ndim != 3:
            raise VaekitError(f"'{path}': dSprites' imgs must be (N, H, W) images; got shape {imgs.shape}")
        if latents.shape != (len(imgs), 6):
            raise VaekitError(
                f"'{path}': dSprites' latents_classes must be ({len(imgs)}, 6) (colour, shape, scale, "
                f"orientation, posX, posY); got shape {latents.shape}"
            )
        return FactorArrays(imgs[:, None], latents[:, 1:], FACTORS, where=f"'{path}'")  # colour is always 0
    if "factors" in keys:
        name = "x" if "x" in keys else "images" if "images" in keys else None
        if name is None:
            raise VaekitError(
                f"'{path}': no data array beside 'factors'; expected key 'x' or 'images', found {sorted(keys)}"
            )
        images = load(name)
        if images.ndim not in (3, 4):
            raise VaekitError(
                f"'{path}': images of shape {images.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C)"
            )
        return FactorArrays(images[:, None] if images.ndim == 3 else images, load("factors"), where=f"'{path}'")
    return None


def prepare_shapes(cfg: DataConfig, device: str | torch.device = "cpu") -> RenderedData:
    """The shapes grid (data.shapes_grid, data.image_size); see `prepare_factors`."""
    return prepare_factors(
        cfg, ShapesGrid(tuple(cfg.shapes_grid or FULL_GRID), tuple(cfg.image_size or (64, 64))), device
    )


def prepare_factors(cfg: DataConfig, truth: Any, device: str | torch.device = "cpu") -> RenderedData:
    """Data with known factors (`shapes.ShapesGrid`, or `shapes.FactorArrays` from an .npz), split by
    data.seed, training images made as batches need them. Labels are the first factor's codes (the
    shape, for shapes and dSprites); `ground_truth` is `truth`, for the disentanglement metrics."""
    binary = truth.binary  # shapes and dSprites: 0/1 already
    if cfg.dequantize != "none" or cfg.binarize == "fixed":
        raise VaekitError(
            f"data '{cfg.name}': its images are drawn as batches need them; data.dequantize and "
            "data.binarize = 'fixed' need the data in memory (data.binarize = 'dynamic' works)"
        )
    test, val, train = split_indices(len(truth), cfg, carve_test=True, test_cap=10000, ordered=True)
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
        data = binarize_and_dequantize(data, cfg, "float32")
    return data


def factor_file(p: Path):
    """`shapes.FactorArrays` of an .npz that holds factors (dSprites' file, or x and factors), else None."""
    try:
        with np.load(p, allow_pickle=False) as f:
            return read_factor_file(p, set(f.files), lambda k: f[k])
    except VaekitError:
        raise
    except Exception as e:  # untrusted bytes, as in read_arrays_file
        raise VaekitError(f"cannot read '{p}': {type(e).__name__}: {str(e)[:200]}") from None


class ShapesSource(DataSource):
    """``data.name = "shapes"``: the grid of rendered shapes, drawn as training needs them."""

    def read(self, cfg: Any) -> tuple:
        raise VaekitError("data 'shapes' is rendered as batches need it and has no raw arrays")

    def prepare(self, cfg: Any, device: Any) -> Any:
        return prepare_shapes(cfg, device)

    def describe(self, cfg: Any) -> dict[str, Any]:
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


SHAPES_SOURCE = ShapesSource()
