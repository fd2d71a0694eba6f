"""Deprecated path: `vaekit.datasets` is now `vaekit.data.named` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.datasets moved to vaekit.data.named", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.data.named")
