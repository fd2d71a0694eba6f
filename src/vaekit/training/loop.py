"""One straight training loop for every trainable model.

Reads top to bottom in execution order: set up, (resume), then for each epoch: shuffle, step
through batches (forward -> objective -> backward -> check -> clip -> step), validate, log,
checkpoint, early stop. The objective is computed from the output of ``model(x)``, so a DDP wrapper
sees it; every side effect goes through `RunLog`.

Reliability:

- a checkpoint holds everything the loop's future depends on (weights, optimiser, scheduler, EMA,
  RNG states, the position inside the epoch, partial sums, counters and the metrics history; the
  epoch's batch order follows from (seed, epoch)), so a resumed run ends bit-identical to an
  uninterrupted one;
- the first SIGINT/SIGTERM finishes the current step, writes a checkpoint and raises
  `TrainingInterrupted` (a second one interrupts at once);
- every step checks the loss and the gradient norm; a non-finite one stops training with a
  diagnosis, or (``on_nan = "rollback"``) restores the last good state and halves the learning rate.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaekit.config import TrainConfig
from vaekit.data.prepared import Data, batches
from vaekit.errors import VaekitError
from vaekit.objectives.elbo import Progress, elbo_terms
from vaekit.registry import OBJECTIVES
from vaekit.training.checkpoints import unwrap
from vaekit.training.distributed import Context, all_sum, current, shard
from vaekit.training.lock import RunLock
from vaekit.training.runlog import RunLog
from vaekit.training.schedules import kl_weight, lr_factor
from vaekit.training.state import Trainer

__all__ = ["fit", "TrainResult", "mean_terms", "lr_factor", "kl_weight", "diagnose"]


@torch.no_grad()
def mean_terms(
    model: torch.nn.Module,
    x: torch.Tensor,
    cfg: TrainConfig,
    y: torch.Tensor | None = None,
    batch_size: int = 1000,
    ctx: Context = Context(),
    n_data: int | None = None,
) -> dict[str, float]:
    """The training objective's terms (at the full beta, past every schedule; `n_data`: the training
    examples, for the objectives that need it) averaged over all of `x` (sums and counts, never means
    of means). Under torchrun each rank scores its piece of every batch and the sums are added over ranks."""
    model.eval()
    objective = OBJECTIVES.get(cfg.objective)
    sums: dict[str, torch.Tensor] = {}
    for idx in batches(len(x), batch_size, shuffle=False, device=x.device):
        idx = shard(idx, ctx)
        xb, yb = x[idx], (y[idx] if y is not None else None)
        out = model(xb, yb, n_samples=cfg.samples)
        for k, v in objective(out, xb, cfg.beta, cfg.free_bits, cfg=cfg, at=Progress(n_data=n_data)).items():
            sums[k] = sums.get(k, 0) + v.sum()
    return {
        k: float(all_sum(torch.as_tensor(v, dtype=torch.float64, device=x.device), ctx)) / len(x)
        for k, v in sums.items()
    }


@dataclass
class TrainResult:
    model: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0


class StopSignals:
    """While active (main thread only), the first SIGINT or SIGTERM only records a request to stop
    after the current step; a second one raises KeyboardInterrupt at once."""

    def __init__(self, log: RunLog):
        self.log, self.signum, self._old = log, None, {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\nvaekit: {signal.Signals(signum).name} received: stopping after this step "
            "(send it again to stop at once, without a checkpoint)",
            file=sys.stderr,
        )

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


@torch.no_grad()
def diagnose(
    out: Any,
    x: torch.Tensor,
    y: torch.Tensor | None,
    loss: torch.Tensor,
    gnorm: torch.Tensor,
    model: Any,
    cfg: TrainConfig,
) -> str:
    """Why a step went non-finite, in one line: which value, which term, the encoder's log-variance
    range, the likely cause and what to try."""
    what = (
        f"the loss is {float(loss)}"
        if not torch.isfinite(loss)
        else f"the loss is finite but the gradient norm is {float(gnorm)}"
    )
    parts, cause = [what], None
    try:
        terms = {k: float(v.mean()) for k, v in elbo_terms(out, x).items() if k in ("nll", "kl")}
    except (ValueError, RuntimeError):
        terms = {}
    names = {"nll": "reconstruction", "kl": "KL"}
    if terms:
        parts.append(", ".join(f"{names[k]} term {v:.4g}" for k, v in terms.items()))
    logvar = unwrap(model).encoder_log_variance(
        x, y
    )  # (B, D): the encoder's own output, before exp(); None if deterministic
    if logvar is not None:
        finite = logvar[torch.isfinite(logvar)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (math.nan, math.nan)
        parts.append(
            f"encoder log-variance in [{lo:.3g}, {hi:.3g}]"
            + ("" if finite.numel() == logvar.numel() else " and non-finite")
        )
    if not torch.isfinite(x).all():
        cause = "the batch itself holds NaN or Inf"
    elif float(x.abs().max()) > 1e6:
        cause = (
            f"the data's values reach {float(x.abs().max()):.3g}; scale them (data.scaling = 'standard' or 'minmax')"
        )
    elif logvar is not None and (
        not torch.isfinite(logvar).all() or float(logvar.abs().max()) > 60 or not math.isfinite(terms.get("kl", 0.0))
    ):
        cause = (
            "the encoder's log-variance ran away, so exp() of it overflowed or underflowed (usually a learning "
            "rate too high)"
        )
    elif not math.isfinite(terms.get("nll", 0.0)):
        lik = unwrap(model).likelihood
        cause = (
            f"the decoder's output left the range the {lik} likelihood can score (a scale collapsed to 0 or a "
            f"logit exploded)"
        )
    elif not torch.isfinite(gnorm):
        cause = "a gradient overflowed although the loss was finite"
    advice = f"--set train.lr={cfg.lr / 2:g}"
    advice += (
        ", --set train.grad_clip=10"
        if cfg.grad_clip is None
        else f", a smaller train.grad_clip (now {cfg.grad_clip:g})"
    )
    if cfg.on_nan == "stop":
        advice += " or --on-nan rollback"
    return "; ".join(parts) + (f". Likely cause: {cause}" if cause else "") + f". What to try: {advice}"


def fit(
    model: torch.nn.Module,
    data: Data,
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    log: RunLog | None = None,
) -> TrainResult:
    """Train `model` on `data` with `cfg`. With `run_dir`, write metrics.jsonl, training checkpoints
    (``checkpoints/step-N/``: at each epoch's end, every ``checkpoint_every`` steps and on SIGINT/
    SIGTERM) and the best model (``model/``); `resume` continues exactly from the newest checkpoint.
    Returns the model holding the weights of the best validation epoch (the last if no validation)."""
    run = Path(run_dir) if run_dir is not None else None
    log = log or RunLog(
        run, is_main=current().is_main, progress=cfg.progress
    )  # creates the run directory (main process)
    with RunLock(run) if run is not None and log.is_main else nullcontext(), StopSignals(log) as signals:
        return _fit(model, data, cfg, run, resume, log, signals)


def _fit(
    model, data: Data, cfg: TrainConfig, run: Path | None, resume: bool, log: RunLog, signals: StopSignals
) -> TrainResult:
    t = Trainer(model, data, cfg, run, log)  # seeds this rank, wraps the model, builds optimiser & co.
    conditional = unwrap(model).conditional
    if conditional and data.y_train is None:
        raise VaekitError(f"a conditional model needs labels; data '{data.name}' has none")
    if resume:
        t.resume()
    t.remember_good()
    t_start = time.perf_counter() - t.state.seconds
    while t.state.epoch < cfg.epochs:
        if t.state.batch == 0 and t.state.epoch > 0 and (reason := t.stop_reason()):
            log.report(f"vaekit: {reason}")
            break
        epoch = t.state.epoch + 1
        t.sampler.set_epoch(t.state.epoch)
        order = t.sampler.global_batches(data.device)  # the epoch's global batches of indices, (B,) each
        t.net.train()
        failure = None
        first = t.state.batch  # > 0 when resuming mid-epoch
        # The bar is closed (and its line cleared) however the epoch ends: an error is then the only line left.
        with log.bar(range(first, len(order)), len(order), f"epoch {epoch}/{cfg.epochs}", initial=first) as bar:
            # This rank's piece of each remaining global batch, made (or read from disk) as it is reached.
            pieces = data.iterate([shard(order[i], t.ctx) for i in range(first, len(order))])
            for i, (x, y) in zip(bar, pieces):  # x: (B, *shape), freshly binarised/dequantised if configured
                y = y if conditional else None  # (B,)
                out, terms, loss, gnorm, ok = t.forward_backward(x, y, len(order[i]))
                failed, stop_signum = t.agree(~ok, signals.signum)
                if failed:
                    failure = (
                        f"training diverged at epoch {epoch}, step {t.state.step + 1}: "
                        + diagnose(out, x, y, loss.detach(), gnorm, model, cfg)
                        + t.overflow_note(loss)
                    )
                    break
                t.apply_step(terms)
                t.state.batch = i + 1
                if i % 25 == 0 and log.progress:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                if stop_signum is not None:
                    t.checkpoint()
                    raise t.interrupted(stop_signum)
                if cfg.checkpoint_every and t.state.step % cfg.checkpoint_every == 0 and i + 1 < len(order):
                    t.checkpoint()
        if failure is not None:
            t.rollback(failure)  # raises unless on_nan = "rollback" has rollbacks left
            continue

        record = {
            "epoch": epoch,
            "step": t.state.step,
            "lr": t.opt.param_groups[0]["lr"],
            "beta": kl_weight(max(t.state.step - 1, 0), t.steps_per_epoch, cfg),
            **t.train_means(),
        }
        if len(data.x_val):
            y_val = data.y_val if conditional else None
            record.update(
                {
                    f"val_{k}": v
                    for k, v in mean_terms(t.eval_model, data.x_val, cfg, y_val, ctx=t.ctx, n_data=data.n_train).items()
                }
            )
        t.state.seconds = time.perf_counter() - t_start
        record["seconds"] = round(t.state.seconds, 3)
        t.close_epoch(record)  # history, best weights (RUN/model), early-stop count, checkpoint
        log.log(record)
        log.report(
            f"epoch {epoch}: "
            + " ".join(f"{k}={v:.4g}" for k, v in record.items() if k.startswith(("train_loss", "val_loss", "val_kl")))
        )
        _, stop_signum = t.agree(False, signals.signum)
        if stop_signum is not None:  # the last epoch too: stop before the evaluation, resumable
            raise t.interrupted(stop_signum)

    if t.best_weights is not None:
        unwrap(model).load_state_dict(t.best_weights)
    log.close()
    model.eval()
    return TrainResult(model=model, history=t.history, best_epoch=t.state.best_epoch, seconds=t.state.seconds)
