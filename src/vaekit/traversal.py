"""Deprecated path: `vaekit.traversal` is now `vaekit.explorer.traversal` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.traversal moved to vaekit.explorer.traversal", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.explorer.traversal")
