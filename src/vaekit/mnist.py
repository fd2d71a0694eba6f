"""Deprecated path: `vaekit.mnist` is now `vaekit.data.mnist` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.mnist moved to vaekit.data.mnist", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.data.mnist")
