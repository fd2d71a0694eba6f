"""Deprecated path: `vaekit.api` is now `vaekit.runs` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.api moved to vaekit.runs", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.runs")
