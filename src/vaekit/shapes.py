"""Deprecated path: `vaekit.shapes` is now `vaekit.data.shapes` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.shapes moved to vaekit.data.shapes", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.data.shapes")
