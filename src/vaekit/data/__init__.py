"""Data in: readers, named datasets, streaming and factors data, prepared as tensors.

- `prepared`: `Data` and `prepare` (the splits, scaling, binarise/dequantise), `describe`, fingerprints,
  and the readers of the user's own files (arrays, CSV, image folders, streamed folders);
- `named`: datasets by name beyond MNIST (Fashion-MNIST, CIFAR-10, CelebA), verified like MNIST;
- `mnist`: MNIST, offline first;
- `shapes`: the rendered shapes grid with known factors;
- `downloads`: mirrors, checksums, the cache and safe array reading.
"""

from __future__ import annotations

import importlib

# The names of the old `vaekit.data` module, kept for one release (imported lazily).
_OLD_MODULE = "vaekit.data.prepared"
_OLD_NAMES = (
    "IMAGE_SUFFIXES",
    "Data",
    "DiskImages",
    "OnDemandData",
    "StreamData",
    "RenderedData",
    "prepare_shapes",
    "prepare_factors",
    "prepare_stream",
    "MAX_FOLDER_ENTRIES",
    "list_images",
    "read_image",
    "StreamImages",
    "read_raw",
    "FLOAT32_MAX",
    "MAX_ABS_VALUE",
    "MAX_CLASSES",
    "dequantize",
    "prepare",
    "split_indices",
    "batches",
    "describe",
    "DATA_RECORD",
    "fingerprint",
    "check_recorded",
)


def __getattr__(name: str):
    if name in _OLD_NAMES:
        return getattr(importlib.import_module(_OLD_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
