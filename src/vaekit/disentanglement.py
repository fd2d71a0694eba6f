"""Deprecated path: `vaekit.disentanglement` is now `vaekit.metrics.disentanglement` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.disentanglement moved to vaekit.metrics.disentanglement", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.metrics.disentanglement")
