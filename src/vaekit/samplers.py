"""Deprecated path: `vaekit.samplers` is now `vaekit.models.samplers` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.samplers moved to vaekit.models.samplers", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.models.samplers")
