"""One straight training loop for every trainable model.

Reads top to bottom in execution order: set up, (resume), then for each epoch: shuffle, step
through batches (forward -> objective -> backward -> clip -> step), validate, log, checkpoint, early
stop. The objective is computed from the output of ``model(x)``, so a DDP wrapper sees it; every
side effect goes through `RunLog`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_training_state, save_pretrained, save_training_state, unwrap
from .config import TrainConfig
from .data import Data, batches
from .errors import VaekitError
from .objectives import OBJECTIVES
from .runlog import RunLog


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaekitError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    return opt(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


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


@torch.no_grad()
def mean_terms(model: torch.nn.Module, x: torch.Tensor, cfg: TrainConfig, y: torch.Tensor | None = None,
               batch_size: int = 1000) -> dict[str, float]:
    """The training objective's terms (at the full beta) averaged over all of `x` (sums and counts,
    never means of means)."""
    model.eval()
    objective = OBJECTIVES[cfg.objective]
    sums: dict[str, torch.Tensor] = {}
    for idx in batches(len(x), batch_size, shuffle=False, device=x.device):
        xb, yb = x[idx], (y[idx] if y is not None else None)
        for k, v in objective(model(xb, yb, n_samples=cfg.samples), xb, cfg.beta, cfg.free_bits).items():
            sums[k] = sums.get(k, 0) + v.sum()
    return {k: float(v) / len(x) for k, v in sums.items()}


@dataclass
class TrainResult:
    model: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0


def fit(model: torch.nn.Module, data: Data, cfg: TrainConfig, run_dir: str | Path | None = None,
        resume: bool = False, log: RunLog | None = None) -> TrainResult:
    """Train `model` on `data` with `cfg`. With `run_dir`, write metrics.jsonl, a checkpoint every
    epoch (``checkpoint/``) and the best model (``model/``); `resume` continues from the checkpoint.
    Returns the model holding the weights of the best validation epoch (the last if no validation)."""
    device = data.x_train.device
    log = log or RunLog(run_dir, progress=cfg.progress)
    ckpt_dir = Path(run_dir) / "checkpoint" if run_dir is not None else None
    torch.manual_seed(cfg.seed)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    opt = make_optimizer(model, cfg)
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps_per_epoch, cfg))
    objective = OBJECTIVES[cfg.objective]
    conditional = getattr(unwrap(model), "conditional", False)
    if conditional and data.y_train is None:
        raise VaekitError(f"a conditional model needs labels; data '{data.name}' has none")
    # The EMA copy is what validation, the best weights and the returned model use.
    ema = (torch.optim.swa_utils.AveragedModel(unwrap(model), multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                               use_buffers=True) if cfg.ema is not None else None)
    eval_model = ema.module if ema is not None else unwrap(model)
    state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": None, "bad_epochs": 0, "seconds": 0.0}
    history: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None

    if resume:
        if ckpt_dir is None or not (ckpt_dir / "training.json").exists():
            raise VaekitError(f"cannot resume: no checkpoint in '{ckpt_dir}'")
        saved = load_training_state(ckpt_dir, model)
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        torch.set_rng_state(saved["rng"]["torch"])
        shuffle.set_state(saved["rng"]["shuffle"])
        if device.type == "cuda" and "cuda" in saved["rng"]:
            torch.cuda.set_rng_state(saved["rng"]["cuda"], device)
        state = saved["trainer"]
        best_state = saved.get("best_model")
        history = log.truncate_after(state["epoch"])
        log.info(f"vaekit: resuming from epoch {state['epoch']} (step {state['step']})")

    t_start = time.perf_counter() - state["seconds"]
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        model.train()
        sums: dict[str, torch.Tensor] = {}
        bar = log.bar(batches(n, cfg.batch_size, shuffle, device=device), steps_per_epoch, f"epoch {epoch}/{cfg.epochs}")
        for i, idx in enumerate(bar):
            x = data.train_batch(idx)  # (B, *shape), freshly binarised/dequantised if configured
            y = data.y_train[idx] if conditional else None  # (B,)
            beta = kl_weight(state["step"], steps_per_epoch, cfg)
            terms = objective(model(x, y, n_samples=cfg.samples), x, beta, cfg.free_bits)  # each (B,)
            loss = terms["loss"].mean()  # nats per example
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(unwrap(model))
            state["step"] += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0) + v.detach().sum()
            if i % 25 == 0 and log.progress:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if not all(math.isfinite(float(v)) for v in sums.values()):
            raise VaekitError(f"training diverged at epoch {epoch}: loss is not finite; try a lower train.lr or train.grad_clip")

        record = {"epoch": epoch, "step": state["step"], "lr": opt.param_groups[0]["lr"], "beta": beta}
        record.update({f"train_{k}": float(v) / n for k, v in sums.items()})
        if len(data.x_val):
            record.update({f"val_{k}": v for k, v in mean_terms(eval_model, data.x_val, cfg, data.y_val if conditional else None).items()})
        state["seconds"] = time.perf_counter() - t_start
        record["seconds"] = round(state["seconds"], 3)
        history.append(record)

        monitored = record.get("val_loss", record["train_loss"])
        improved = monitored < state["best"]
        if improved:
            state.update(best=monitored, best_epoch=epoch, bad_epochs=0)
            best_state = {k: v.detach().clone() for k, v in eval_model.state_dict().items()}
            if run_dir is not None:
                log.save(lambda: save_pretrained(eval_model, Path(run_dir) / "model"))
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        if ckpt_dir is not None:
            rng = {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()}
            if device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(device)
            snapshot = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng,
                        "trainer": dict(state), "best_model": best_state}
            if ema is not None:
                snapshot["ema"] = ema.state_dict()
            log.save(lambda: save_training_state(ckpt_dir, model, snapshot))
        log.log(record)
        log.info(f"epoch {epoch}: " + " ".join(f"{k}={v:.4g}" for k, v in record.items()
                                              if k.startswith(("train_loss", "val_loss", "val_kl"))))
        if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
            log.info(f"vaekit: early stop at epoch {epoch}: no improvement in validation loss for {cfg.patience} epochs")
            break
        if cfg.max_minutes is not None and state["seconds"] >= 60 * cfg.max_minutes:
            log.info(f"vaekit: time budget of {cfg.max_minutes:g} minutes reached at epoch {epoch}")
            break

    if best_state is not None:
        unwrap(model).load_state_dict(best_state)
    log.close()
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=state["best_epoch"], seconds=state["seconds"])
