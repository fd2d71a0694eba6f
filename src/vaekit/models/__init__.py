"""The models, all on one contract (`base.LatentModel`): encode, embed, decode, reconstruct, prior,
sample, describe. Each model is built by name through `registry.MODELS`."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..config import ModelConfig, build_section
from ..registry import MODELS
from .autoencoder import Autoencoder, LinearAutoencoder, ModelOutput, VAE
from .base import CannotSample, LatentModel
from .pca import PCA

__all__ = ["LatentModel", "CannotSample", "PCA", "Autoencoder", "LinearAutoencoder", "VAE", "ModelOutput",
           "build_model", "from_description"]


def build_model(cfg: ModelConfig, shape: tuple[int, ...]) -> LatentModel:
    """The model a config names, for data of shape (C, H, W) or (F,) (untrained; PCA unfitted)."""
    if cfg.latent_dim is None or cfg.hidden is None or cfg.likelihood is None:  # fill the model's defaults
        cfg = build_section("model", {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})
    return MODELS.get(cfg.name)(cfg, tuple(shape))


def from_description(meta: dict[str, Any], state: dict[str, torch.Tensor],
                     encoder: torch.nn.Module | None = None, decoder: torch.nn.Module | None = None,
                     where: str = "the model directory") -> LatentModel:
    """Rebuild a model from what `describe()` wrote (validated plain data) and its weights.
    A model with custom nets ("custom") needs them passed as encoder and decoder."""
    from ..errors import VaekitError

    shape = tuple(meta["shape"])
    if meta["model"] == "pca":
        return PCA(meta["n_components"], whiten=meta["whiten"]).load_state_dict(state, shape)
    if meta["model"] == "custom":
        if encoder is None or decoder is None:
            raise VaekitError(f"'{where}' holds a model with custom nets: pass encoder= and decoder= to load()")
        extra = {"components": meta.get("components", 5), "num_classes": meta.get("num_classes", 0)}
        if meta["variational"]:
            model = VAE(encoder, decoder, shape, meta["latent_dim"], meta["likelihood"], meta["sigma"], **extra,
                        prior=meta.get("prior") or "standard_normal", prior_components=meta.get("prior_components") or None)
        else:
            model = Autoencoder(encoder, decoder, shape, meta["latent_dim"], meta["likelihood"], meta["sigma"], **extra)
    else:
        model = build_model(build_section("model", meta["config"]), shape)
    model.load_state_dict(state)
    return model
