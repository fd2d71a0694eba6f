"""Deprecated path: `vaekit.runlock` is now `vaekit.training.lock` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.runlock moved to vaekit.training.lock", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.lock")
