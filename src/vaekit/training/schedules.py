"""Schedules as pure functions of the optimiser step, testable alone."""

from __future__ import annotations

import math

from vaekit.config import TrainConfig


def lr_factor(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based)."""
    epoch = step / steps_per_epoch
    warm = min(1.0, (epoch + 1 / steps_per_epoch) / cfg.warmup_epochs) if cfg.warmup_epochs > 0 else 1.0
    if cfg.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * min(epoch / cfg.epochs, 1.0)))
    if cfg.schedule == "exponential":
        return warm * cfg.gamma ** math.floor(epoch)
    return warm


def kl_weight(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """beta, ramped linearly from 0 over `kl_warmup_epochs`; with the cyclic schedule the ramp
    restarts every `kl_cycle_epochs` (Fu et al. 2019) and holds beta for the rest of each cycle."""
    if cfg.kl_warmup_epochs <= 0:
        return cfg.beta
    epoch = step / steps_per_epoch
    if cfg.kl_schedule == "cyclic":
        epoch = math.fmod(epoch, cfg.kl_cycle_epochs)
    return cfg.beta * min(1.0, epoch / cfg.kl_warmup_epochs)
