"""Deprecated path: `vaekit.likelihoods` is now `vaekit.models.likelihoods` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.likelihoods moved to vaekit.models.likelihoods", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.models.likelihoods")
