"""Deprecated path: `vaekit.downloads` is now `vaekit.data.downloads` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.downloads moved to vaekit.data.downloads", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.data.downloads")
