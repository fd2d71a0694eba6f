"""Deprecated path: `vaekit.export` is now `vaekit.explorer.onnx_export` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.export moved to vaekit.explorer.onnx_export", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.explorer.onnx_export")
