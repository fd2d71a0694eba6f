"""The file formats ``data.name`` may be a path to: arrays, CSV, IDX and image folders, each a
`sources.DataSource` registered in `registry.FORMATS`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaekit.config import DataConfig
from vaekit.data.prepared import Data
from vaekit.data.readers import read_arrays_file, read_csv, read_image_folder
from vaekit.data.shapes import factor_file, prepare_factors
from vaekit.data.sources import DataSource


class ArraysFormat(DataSource):
    """.npy (examples) or .npz (x, and y, x_test, y_test if present; or images with their factors)."""

    label = ".npy, .npz"

    def claims(self, path: Path) -> bool:
        return path.is_file() and (path.suffix in (".npy", ".npz") or path.suffix.lower() == ".npz")

    def read(self, cfg: DataConfig):
        return read_arrays_file(Path(cfg.name))

    def prepare(self, cfg: DataConfig, device: str | torch.device) -> Data | None:
        truth = factor_file(Path(cfg.name)) if cfg.name.lower().endswith(".npz") else None
        return None if truth is None else prepare_factors(cfg, truth, device)  # images with their factors

    def describe(self, cfg: DataConfig) -> dict | None:
        truth = factor_file(Path(cfg.name)) if cfg.name.lower().endswith(".npz") else None
        if truth is None:
            return None
        head = truth.images(np.arange(min(len(truth), 1000)))  # described, and checked, as training reads them
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


class CsvFormat(DataSource):
    """A CSV of numbers, one example per row (a header row and a ``label`` column are optional)."""

    label = ".csv"

    def claims(self, path: Path) -> bool:
        return path.is_file() and path.suffix == ".csv"

    def read(self, cfg: DataConfig):
        return read_csv(Path(cfg.name))


class IdxFormat(DataSource):
    """An IDX file (MNIST's format), gzipped or not."""

    label = "an IDX file (*-ubyte, *.idx)"

    def claims(self, path: Path) -> bool:
        return path.is_file() and path.name.endswith(("-ubyte", "-ubyte.gz", ".idx", ".idx.gz"))

    def read(self, cfg: DataConfig):
        from vaekit.data.downloads import read_idx

        return read_idx(Path(cfg.name)), None, None, None


class FolderFormat(DataSource):
    """A folder of images (class sub-folders give labels); streamed from disk with data.stream = true."""

    label = "a folder of images"

    def claims(self, path: Path) -> bool:
        return path.is_dir()

    def read(self, cfg: DataConfig):
        return read_image_folder(Path(cfg.name), cfg)


ARRAYS, CSV, IDX, FOLDER = ArraysFormat(), CsvFormat(), IdxFormat(), FolderFormat()
