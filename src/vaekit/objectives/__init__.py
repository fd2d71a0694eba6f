"""Objectives: pure per-example functions of a model's output and the data, in nats.

- `elbo`: the ELBO family (ELBO, IWAE, free bits) and its pieces;
- `aggregate_posterior`: objectives that shape q(z) towards independent codes (β-TC-VAE, InfoVAE, capacity).
"""

from __future__ import annotations

import importlib

# The names of the old `vaekit.objectives` module, kept for one release (imported lazily).
_OLD_MODULE = "vaekit.objectives.elbo"
_OLD_NAMES = (
    "Progress",
    "reconstruction_nll",
    "kl_standard_normal",
    "kl_per_dimension",
    "kl_monte_carlo",
    "free_bits_kl",
    "elbo_terms",
    "log_weights",
    "iwae_terms",
    "squared_error",
    "binary_cross_entropy",
)


def __getattr__(name: str):
    if name in _OLD_NAMES:
        return getattr(importlib.import_module(_OLD_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
