"""Deprecated path: `vaekit.generation` is now `vaekit.metrics.generation` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.generation moved to vaekit.metrics.generation", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.metrics.generation")
