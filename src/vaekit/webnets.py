"""Deprecated path: `vaekit.webnets` is now `vaekit.explorer.netprograms` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.webnets moved to vaekit.explorer.netprograms", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.explorer.netprograms")
