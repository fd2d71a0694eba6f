"""Deprecated path: `vaekit.flows` is now `vaekit.models.posteriors` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.flows moved to vaekit.models.posteriors", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.models.posteriors")
