"""Deprecated path: `vaekit.priors` is now `vaekit.models.priors` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.priors moved to vaekit.models.priors", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.models.priors")
