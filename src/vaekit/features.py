"""Deprecated path: `vaekit.features` is now `vaekit.metrics.features` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.features moved to vaekit.metrics.features", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.metrics.features")
