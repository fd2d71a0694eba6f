"""The tutorial: PCA, the linear and deep autoencoders and the VAE, run and reported (`vaekit tour`).

- `experiment`: `tour`, the experiment;
- `tables`: its models, image sets and generation table, as typed data;
- `report`: its self-contained HTML page.
"""

from __future__ import annotations

import importlib

# The names of the old `vaekit.tutorial` module, kept for one release (imported lazily).
_OLD_MODULE = "vaekit.tutorial.experiment"
_OLD_NAMES = (
    "SETTINGS",
    "CODE",
    "STEPS",
    "Steps",
    "principal_angles_deg",
    "variance_captured",
    "moon_pairs",
    "midpoints",
    "interpolation_rows",
    "tour",
    "FLOOR",
    "CVAE",
    "DIGIT_SCORE_NAMES",
    "test_halves",
    "generation_sets",
    "set_features",
    "generation_table",
    "pictures",
    "EXPLORER_INTRO",
    "moon_explorer",
)


def __getattr__(name: str):
    if name in ("FLOOR", "CVAE"):  # were the labels; now `tables.ImageSet`s
        return getattr(importlib.import_module("vaekit.tutorial.tables"), name).label
    if name in _OLD_NAMES:
        return getattr(importlib.import_module(_OLD_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
