"""Deprecated path: `vaekit.schedules` is now `vaekit.training.schedules` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.schedules moved to vaekit.training.schedules", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.schedules")
