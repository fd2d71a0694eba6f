"""Deprecated path: `vaekit.parallel` is now `vaekit.training.lanes` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.parallel moved to vaekit.training.lanes", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.lanes")
