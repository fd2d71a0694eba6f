"""Deprecated path: `vaekit.evaluation` is now `vaekit.metrics.evaluation` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.evaluation moved to vaekit.metrics.evaluation", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.metrics.evaluation")
