"""Deprecated path: `vaekit.checkpoint` is now `vaekit.training.checkpoints` (kept for one release)."""

import importlib
import sys
import warnings

warnings.warn("vaekit.checkpoint moved to vaekit.training.checkpoints", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("vaekit.training.checkpoints")
