"""Downloads, the data cache and the safe readers that every dataset shares.

- `cache_dir()`: where prepared arrays are cached (``$VAEKIT_DATA`` or ``~/.cache/vaekit``);
  `save_cache` writes there atomically;
- `download(url, dest)`: one file with a progress bar (callers check its checksum);
- `read_idx`: IDX files (MNIST's format, also Fashion-MNIST's), checked against their headers;
- `ArraysOnlyUnpickler` / `load_arrays_pickle`: pickles that can rebuild numpy arrays and nothing
  else, so no code in a downloaded file can run.
"""

from __future__ import annotations

import contextvars
import gzip
import io
import math
import os
import pickle
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from vaekit.errors import VaekitError


def cache_dir() -> Path:
    return Path(os.environ.get("VAEKIT_DATA") or Path.home() / ".cache" / "vaekit")


def log(msg: str) -> None:
    print(f"vaekit: {msg}", file=sys.stderr)


_failed_routes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("failed_routes", default=None)


@contextmanager
def routes() -> Iterator[list[str]]:
    """Collect the failures of the routes tried for one dataset (mirror after mirror): they go into
    the one-line error if every route fails, and are not printed one line each on the way."""
    failures: list[str] = []
    token = _failed_routes.set(failures)
    try:
        yield failures
    finally:
        _failed_routes.reset(token)


def route_failed(msg: str) -> None:
    """One route (a mirror, a download) failed: remembered by `routes`, or logged outside it."""
    failures = _failed_routes.get()
    if failures is None:
        log(msg)
    else:
        failures.append(" ".join(msg.split())[:160])


def tried(failures: list[str]) -> str:
    """'; tried: A; B' for the end of an error line, or '' when nothing was tried."""
    return f" (tried: {'; '.join(failures)})" if failures else ""


MAX_IDX_BYTES = 1 << 34  # 16 GiB of pixels: more than any IDX dataset, less than a decompression bomb asks for
MAX_IDX_DIMS = 4  # (N,), (N, H, W) or (N, H, W, C)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) of unsigned bytes, checking magic number and sizes.

    The header is read first and says how many bytes follow; no more than that (and never more
    than MAX_IDX_BYTES) is read or decompressed, so a gzip bomb is refused, not inflated."""
    p = Path(path)
    try:
        with open(p, "rb") as raw_file:
            gz = raw_file.read(2) == b"\x1f\x8b"
            raw_file.seek(0)
            f = gzip.GzipFile(fileobj=raw_file) if gz else raw_file
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise VaekitError(f"'{p}' is not an IDX file (bad magic number)")
            if head[2] != 0x08:
                raise VaekitError(f"IDX file '{p}': element type 0x{head[2]:02x} is not unsigned byte (0x08)")
            ndim = head[3]
            if not 1 <= ndim <= MAX_IDX_DIMS:
                raise VaekitError(f"IDX file '{p}': {ndim} dimensions; expected 1 to {MAX_IDX_DIMS}")
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise VaekitError(f"IDX file '{p}': truncated header")
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(shape)
            if expected > MAX_IDX_BYTES:
                raise VaekitError(
                    f"IDX file '{p}': header says {shape} = {expected} bytes; at most {MAX_IDX_BYTES} are read"
                )
            data = _read_at_most(f, expected + 1)  # one more byte than declared tells a file that holds too much
            size = None if gz else os.fstat(raw_file.fileno()).st_size - 4 - 4 * ndim
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise VaekitError(f"cannot read IDX file '{p}': {e}") from None
    except MemoryError:
        raise VaekitError(
            f"IDX file '{p}': header says {shape} = {expected} bytes, more than this process can hold in memory"
        ) from None
    if len(data) != expected:
        held = f"{len(data)}" if len(data) <= expected else (f"{size}" if size is not None else "more")
        raise VaekitError(f"IDX file '{p}': header says {shape} = {expected} bytes of data, file holds {held}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _read_at_most(f, n: int, chunk: int = 1 << 24) -> bytearray:
    """Up to n bytes of f, read 16 MiB at a time: memory grows with what the file holds, never
    with what its header claims (one read(n) allocates all n bytes first)."""
    out = bytearray()
    while len(out) < n and (piece := f.read(min(chunk, n - len(out)))):
        out += piece
    return out


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
