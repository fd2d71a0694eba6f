"""vaekit: variational autoencoders and the models they grew out of, on PyTorch.

The public API is imported lazily, so ``import vaekit`` is cheap and ``vaekit --help`` is fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "PCA": "vaekit.models",
    "Autoencoder": "vaekit.models",
    "LinearAutoencoder": "vaekit.models",
    "VAE": "vaekit.models",
    "build_model": "vaekit.models",
    "LatentModel": "vaekit.models",
    "CannotSample": "vaekit.models",
    "RunConfig": "vaekit.config",
    "DataConfig": "vaekit.config",
    "ModelConfig": "vaekit.config",
    "TrainConfig": "vaekit.config",
    "load_config": "vaekit.config",
    "prepare": "vaekit.data.prepared",
    "load_mnist": "vaekit.data.mnist",
    "fit": "vaekit.training.loop",
    "train": "vaekit.runs",
    "load_run": "vaekit.runs",
    "evaluate_run": "vaekit.runs",
    "evaluate_run_generation": "vaekit.runs",
    "evaluate_run_disentanglement": "vaekit.runs",
    "save_pretrained": "vaekit.training.checkpoints",
    "load": "vaekit.training.checkpoints",
    "evaluate": "vaekit.metrics.evaluation",
    "tour": "vaekit.tutorial.experiment",
    "traversal": "vaekit.explorer.traversal",
    "explore": "vaekit.explorer.page",
    "TableModel": "vaekit.tables.api",
    "TableSettings": "vaekit.tables.fit",
    "penguins_path": "vaekit.tables.api",
    "VaekitError": "vaekit.errors",
    "TrainingInterrupted": "vaekit.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vaekit' has no attribute '{name}'")
