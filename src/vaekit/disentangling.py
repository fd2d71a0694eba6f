"""Deprecated path: `vaekit.disentangling` is now `vaekit.objectives.aggregate_posterior` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.disentangling moved to vaekit.objectives.aggregate_posterior", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.objectives.aggregate_posterior")
