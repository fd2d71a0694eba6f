"""Deprecated path: `vaekit.report` is now `vaekit.tutorial.report` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.report moved to vaekit.tutorial.report", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.tutorial.report")
