"""Deprecated path: `vaekit.nets` is now `vaekit.models.nets` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.nets moved to vaekit.models.nets", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.models.nets")
