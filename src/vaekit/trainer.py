"""Deprecated path: `vaekit.trainer` is now `vaekit.training.state` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.trainer moved to vaekit.training.state", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.state")
