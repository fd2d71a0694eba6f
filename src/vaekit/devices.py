"""Deprecated path: `vaekit.devices` is now `vaekit.training.devices` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.devices moved to vaekit.training.devices", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.devices")
