"""The models, all on one contract (`base.LatentModel`): encode, embed, decode, reconstruct, prior,
sample, describe. Each model is built by name through `registry.MODELS`."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import torch

from vaekit.config import build_section
from vaekit.models.autoencoder import VAE, Autoencoder, LinearAutoencoder, ModelOutput
from vaekit.models.base import CannotSample, LatentModel
from vaekit.models.pca import PCA
from vaekit.registry import MODELS

if TYPE_CHECKING:  # assembled from the models' own settings, so not imported while they load
    from vaekit.config import ModelConfig

__all__ = [
    "LatentModel",
    "CannotSample",
    "PCA",
    "Autoencoder",
    "LinearAutoencoder",
    "VAE",
    "ModelOutput",
    "build_model",
    "from_description",
]


def build_model(cfg: ModelConfig, shape: tuple[int, ...]) -> LatentModel:
    """The model a config names, for data of shape (C, H, W) or (F,) (untrained; PCA unfitted)."""
    if cfg.latent_dim is None or cfg.hidden is None or cfg.likelihood is None:  # fill the model's defaults
        cfg = build_section("model", {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})
    return MODELS.get(cfg.name)(cfg, tuple(shape))


def from_description(
    meta: dict[str, Any],
    state: dict[str, torch.Tensor],
    encoder: torch.nn.Module | None = None,
    decoder: torch.nn.Module | None = None,
    where: str = "the model directory",
) -> LatentModel:
    """Rebuild a model from what `describe()` wrote (validated plain data) and its weights.
    A model with custom nets ("custom") needs them passed as encoder and decoder."""
    from vaekit.errors import VaekitError

    shape = tuple(meta["shape"])
    if meta["model"] == "pca":
        return PCA(meta["n_components"], whiten=meta["whiten"]).load_state_dict(state, shape)
    if meta["model"] == "custom":
        if encoder is None or decoder is None:
            raise VaekitError(f"'{where}' holds a model with custom nets: pass encoder= and decoder= to load()")
        extra = {"components": meta.get("components", 5), "num_classes": meta.get("num_classes", 0)}
        if meta["variational"]:
            model = VAE(
                encoder,
                decoder,
                shape,
                meta["latent_dim"],
                meta["likelihood"],
                meta["sigma"],
                **extra,
                prior=meta.get("prior") or "standard_normal",
                prior_components=meta.get("prior_components") or None,
            )
        else:
            model = Autoencoder(encoder, decoder, shape, meta["latent_dim"], meta["likelihood"], meta["sigma"], **extra)
    else:
        cfg = build_section("model", meta["config"])
        check_fits_in_memory(cfg, shape, training=False, where=f"'{where}'")  # a config.json may ask for anything
        model = build_model(cfg, shape)
    model.load_state_dict(state)
    return model


def estimate_bytes(
    cfg: ModelConfig, shape: tuple[int, ...], batch_size: int = 1, samples: int = 1, training: bool = True
) -> int:
    """The memory the model a config describes needs, found without allocating it: the model is
    built on PyTorch's "meta" device (shapes only) and run forward on a meta batch of
    `batch_size` x `samples` codes, counting every module's output. Training keeps 4 float32 copies
    of the parameters (weights, gradients, Adam's two moments) and about 3 of the activations
    (forward, saved for backward, their gradients); inference 1 and 1."""
    from vaekit.registry import POSTERIORS

    flow = POSTERIORS.get(cfg.posterior)
    if not flow.diagonal:  # zuko builds its masks with ops the meta device lacks: count the flow apart
        extra = flow.parameter_count(cfg.latent_dim, cfg.flow_steps, cfg.flow_hidden)
        cfg = dataclasses.replace(cfg, posterior="diagonal", latent_dim=cfg.latent_dim * flow.params_per_dim // 2)
    else:
        extra = 0
    with torch.device("meta"):
        model = build_model(cfg, shape)
    if not isinstance(model, torch.nn.Module):  # PCA: an F x F covariance in float64
        f = math.prod(shape)
        return 8 * f * f
    params = sum(p.numel() for p in model.parameters()) + extra
    outputs = [0]

    def count(module, inputs, output):
        if isinstance(output, torch.Tensor) and not list(module.children()):
            outputs[0] += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        x = torch.zeros(batch_size, *shape, device="meta")
        y = torch.zeros(batch_size, dtype=torch.long, device="meta") if model.conditional else None
        model(x, y, n_samples=samples)
    except (RuntimeError, NotImplementedError, ValueError):  # an op without a meta kernel: weights only
        outputs[0] = 0
    finally:
        for h in hooks:
            h.remove()
    return 4 * (params * (4 if training else 1) + outputs[0] * (3 if training else 1))


def available_bytes() -> int | None:
    """Memory the machine can still give (Linux: MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(
    cfg: ModelConfig,
    shape: tuple[int, ...],
    batch_size: int = 1,
    samples: int = 1,
    training: bool = True,
    where: str = "this config",
) -> None:
    """Refuse, in one line with the estimate and the machine's memory, a model that cannot fit."""
    from vaekit.errors import VaekitError

    need, have = estimate_bytes(cfg, shape, batch_size, samples, training), available_bytes()
    if have is not None and need > have:
        gib = lambda b: f"{b / 2**30:.1f} GiB"
        raise VaekitError(
            f"{where} needs about {gib(need)} to {'train' if training else 'load'} (model.latent_dim = "
            f"{cfg.latent_dim}, "
            f"model.hidden = {cfg.hidden}, model.channels = {cfg.channels}, batch {batch_size} x {samples} samples) "
            f"but this machine has {gib(have)} available; make the model or the batch smaller"
        )
