"""Deprecated path: `vaekit.viz` is now `vaekit.explorer.pictures` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.viz moved to vaekit.explorer.pictures", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.explorer.pictures")
