"""Downloads, the data cache and the safe readers that every dataset shares.

- `cache_dir()`: where prepared arrays are cached (``$VAEKIT_DATA`` or ``~/.cache/vaekit``);
  `save_cache` writes there atomically;
- `download(url, dest)`: one file with a progress bar (callers check its checksum);
- `read_idx`: IDX files (MNIST's format, also Fashion-MNIST's), checked against their headers;
- `ArraysOnlyUnpickler` / `load_arrays_pickle`: pickles that can rebuild numpy arrays and nothing
  else, so no code in a downloaded file can run.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from .errors import VaekitError


def cache_dir() -> Path:
    return Path(os.environ.get("VAEKIT_DATA") or Path.home() / ".cache" / "vaekit")


def log(msg: str) -> None:
    print(f"vaekit: {msg}", file=sys.stderr)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) of unsigned bytes, checking magic number and sizes."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise VaekitError(f"cannot read IDX file '{p}': {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise VaekitError(f"'{p}' is not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise VaekitError(f"IDX file '{p}': element type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise VaekitError(f"IDX file '{p}': truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise VaekitError(
            f"IDX file '{p}': header says {shape} = {expected} bytes of data, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else (no code can run)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: a text-to-bytes codec, data only
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': only numpy arrays are allowed")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, wherever it lives
        return getattr(np, name)


def load_arrays_pickle(data: bytes) -> object:
    return ArraysOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def download(url: str, dest: Path, progress: bool) -> None:
    """Fetch `url` into `dest`, with a progress bar when `progress` (the caller checks the checksum)."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=15) as r, open(dest, "wb") as f:
        total = int(r.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False) as bar:
            while chunk := r.read(1 << 16):
                f.write(chunk)
                bar.update(len(chunk))


def save_cache(arrays: dict[str, np.ndarray], cache: Path) -> None:
    """Write the cache atomically (temp file then rename) so a kill never leaves half a file."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npz.part")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, cache)
    except OSError as e:
        log(f"could not write cache '{cache}': {e}")
