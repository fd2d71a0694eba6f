"""Where data comes from: datasets by name and file formats, each a `DataSource` in a registry.

``data.name`` is either a dataset's name (`registry.DATASETS`, aliases and case ignored) or a path,
which the first file format that claims it reads (`registry.FORMATS`). A source reads raw arrays
(`read`), and may prepare itself instead (`prepare`: data rendered as batches need it, or streamed
from disk) and describe itself without reading everything (`describe`). `vaekit.data.prepared`
does the rest the same way for every source: layout, checks, splits, scaling, binarisation.

Adding a dataset or a format is one module that defines its source and one registration line, in
`registry.py` or from your own code::

    from vaekit.registry import DATASETS
    DATASETS.register("my-digits", MyDigits())
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaekit.errors import VaekitError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vaekit.config import DataConfig

Raw = tuple["np.ndarray", "np.ndarray | None", "np.ndarray | None", "np.ndarray | None"]  # x, y, x_test, y_test


class DataSource:
    """A named dataset or a file format. `read` is the one method every source has."""

    label: str = ""  # formats: how "allowed: ..." names it

    def claims(self, path: Path) -> bool:
        """Formats: whether this format reads `path` (an existing file or folder)."""
        return False

    def read(self, cfg: DataConfig) -> Raw:
        """The raw arrays: x (N, ...) and labels y (N,) or None, and a test split (or None to carve one)."""
        raise NotImplementedError

    def prepare(self, cfg: DataConfig, device: str | torch.device) -> Any:
        """The `prepared.Data` this source prepares itself, or None for the common path over `read`."""
        return None

    def describe(self, cfg: DataConfig) -> dict[str, Any] | None:
        """What `vaekit data info` prints, where the source knows it without `read`; else None."""
        return None

    def fetch(self, data_dir: str | None) -> str:
        """Download and cache the dataset; return the line `vaekit data fetch` prints (offered for
        the datasets registered with ``{"fetch": True}``)."""
        raise VaekitError(f"{type(self).__name__} cannot be fetched")


def fetched_line(name: str, arrays: dict[str, Any]) -> str:
    """What `vaekit data fetch` prints for a dataset cached as arrays."""
    from vaekit.data.downloads import cache_dir

    return (
        f"{name}: {len(arrays['x_train'])} train, {len(arrays['x_test'])} test images "
        f"{tuple(arrays['x_train'].shape[1:])}, cached in {cache_dir()}"
    )


def dataset_name(name: str) -> str | None:
    """The registered dataset `name` means (case and aliases ignored), or None if it is a path."""
    from vaekit.registry import DATASETS

    n = name.lower()
    for key in DATASETS.names():
        if n == key or n in DATASETS.defaults(key).get("aliases", ()):
            return key
    return None


def find_source(name: str) -> DataSource:
    """The source that reads ``data.name``: a dataset by name, or the format that claims the path."""
    from vaekit.data.readers import regular_file
    from vaekit.registry import DATASETS, FORMATS

    key = dataset_name(name)
    if key is not None:
        return DATASETS.get(key)
    p = Path(name)
    if not p.exists():
        raise VaekitError(
            f"data '{name}' is neither a dataset name ({', '.join(DATASETS.names())}) nor an existing path"
        )
    if not p.is_dir():
        regular_file(p)
    for fmt in FORMATS.names():
        if FORMATS.get(fmt).claims(p):
            return FORMATS.get(fmt)
    labels = [FORMATS.get(f).label for f in FORMATS.names() if FORMATS.get(f).label]
    raise VaekitError(
        f"data file '{p}': unsupported type '{p.suffix}'; allowed: {', '.join(labels[:-1])} or {labels[-1]}"
    )
