"""Deprecated path: `vaekit.runlog` is now `vaekit.training.runlog` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.runlog moved to vaekit.training.runlog", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.runlog")
