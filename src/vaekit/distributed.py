"""Deprecated path: `vaekit.distributed` is now `vaekit.training.distributed` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.distributed moved to vaekit.training.distributed", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.distributed")
