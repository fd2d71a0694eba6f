"""Looking at a model: pictures, traversals, the offline explorer page and its net programs, ONNX.

- `pictures`: tensors in, PNG files out (grids, curves, latent maps);
- `traversal`: one latent dimension at a time;
- `page`: `explore`, the self-contained HTML explorer;
- `netprograms`: encoders and decoders as small programs of plain operations that the page runs;
- `onnx_export`: encoders and decoders exported to ONNX.
"""

from __future__ import annotations

import importlib

# The names of the old `vaekit.explorer` module, kept for one release (imported lazily).
_OLD_MODULE = "vaekit.explorer.page"
_OLD_NAMES = ("panel_spec", "page_html", "write_page", "check_out", "explore")


def __getattr__(name: str):
    if name in _OLD_NAMES:
        return getattr(importlib.import_module(_OLD_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
