"""Data in: readers, named datasets, streaming and factors data, prepared as tensors.

- `sources`: `DataSource`, what every dataset and file format is, and how ``data.name`` finds its own;
- `prepared`: `Data` and `prepare` (the splits, scaling, binarise/dequantise), streaming, `describe`,
  fingerprints: the same for every source;
- `formats`: the file formats (arrays, CSV, IDX, image folders); `readers`: their readers;
- `named`: datasets by name beyond MNIST (Fashion-MNIST, CIFAR-10, CelebA), verified like MNIST;
- `mnist`: MNIST, offline first;
- `shapes`: the rendered shapes grid with known factors;
- `downloads`: mirrors, checksums, the cache and safe array reading.
"""

from __future__ import annotations

import importlib

# The names of the old `vaekit.data` module, kept for one release (imported lazily): name -> its module now.
_OLD_NAMES = {
    **dict.fromkeys(
        ("IMAGE_SUFFIXES", "MAX_FOLDER_ENTRIES", "list_images", "read_image", "StreamImages"), "vaekit.data.readers"
    ),
    **dict.fromkeys(("prepare_shapes", "prepare_factors"), "vaekit.data.shapes"),
    **dict.fromkeys(
        (
            "Data",
            "DiskImages",
            "OnDemandData",
            "StreamData",
            "RenderedData",
            "prepare_stream",
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
        ),
        "vaekit.data.prepared",
    ),
}


def __getattr__(name: str):
    if name in _OLD_NAMES:
        return getattr(importlib.import_module(_OLD_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
