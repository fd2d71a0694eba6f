"""Deprecated path: `vaekit.classifier` is now `vaekit.metrics.digit_score` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.classifier moved to vaekit.metrics.digit_score", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.metrics.digit_score")
