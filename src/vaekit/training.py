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

import copy
import math
import signal
import sys
import threading
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import checkpoint_dirs, clean_partial_writes, load_checkpoint, recover, save_checkpoint, save_pretrained, unwrap
from .config import TrainConfig
from .data import Data, batches
from .distributed import BatchSampler, Context, all_gather, all_max, all_sum, current, rank_seed, shard, wrap
from .errors import TrainingInterrupted, VaekitError
from .objectives import OBJECTIVES, elbo_terms
from .runlock import RunLock
from .runlog import RunLog


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaekitError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def make_scaler(cfg: TrainConfig, device: torch.device) -> Any:
    """fp16 needs loss scaling (its range is narrow); bf16 has fp32's range and fp32 needs nothing."""
    if cfg.precision != "fp16":
        return None
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3: every device
        return torch.amp.GradScaler(device.type)
    if device.type == "cuda":
        return torch.cuda.amp.GradScaler()
    raise VaekitError("config key 'train.precision': 'fp16' on CPU needs torch >= 2.3; use 'bf16'")


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


FP16_MAX_OVERFLOWS = 30  # consecutive overflowing fp16 steps before it counts as divergence


@torch.no_grad()
def mean_terms(model: torch.nn.Module, x: torch.Tensor, cfg: TrainConfig, y: torch.Tensor | None = None,
               batch_size: int = 1000, ctx: Context = Context()) -> dict[str, float]:
    """The training objective's terms (at the full beta) averaged over all of `x` (sums and counts,
    never means of means). Under torchrun each rank scores its piece of every batch and the sums
    are added over ranks."""
    model.eval()
    objective = OBJECTIVES[cfg.objective]
    sums: dict[str, torch.Tensor] = {}
    for idx in batches(len(x), batch_size, shuffle=False, device=x.device):
        idx = shard(idx, ctx)
        xb, yb = x[idx], (y[idx] if y is not None else None)
        for k, v in objective(model(xb, yb, n_samples=cfg.samples), xb, cfg.beta, cfg.free_bits).items():
            sums[k] = sums.get(k, 0) + v.sum()
    return {k: float(all_sum(torch.as_tensor(v, dtype=torch.float64, device=x.device), ctx)) / len(x) for k, v in sums.items()}


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

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nvaekit: {signal.Signals(signum).name} received: stopping after this step "
              "(send it again to stop at once, without a checkpoint)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


def grad_norm(model: torch.nn.Module, clip: float | None) -> torch.Tensor:
    """The global L2 norm of the gradients (clipping them to `clip` if given): a 0-dim tensor."""
    params = [p for p in model.parameters() if p.grad is not None]
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    if not params:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach()) for p in params]))


@torch.no_grad()
def diagnose(out: Any, x: torch.Tensor, y: torch.Tensor | None, loss: torch.Tensor, gnorm: torch.Tensor, model: Any, cfg: TrainConfig) -> str:
    """Why a step went non-finite, in one line: which value, which term, the encoder's log-variance
    range, the likely cause and what to try."""
    what = f"the loss is {float(loss)}" if not torch.isfinite(loss) else f"the loss is finite but the gradient norm is {float(gnorm)}"
    parts, cause = [what], None
    try:
        terms = {k: float(v.mean()) for k, v in elbo_terms(out, x).items() if k in ("nll", "kl")}
    except (ValueError, RuntimeError):
        terms = {}
    names = {"nll": "reconstruction", "kl": "KL"}
    if terms:
        parts.append(", ".join(f"{names[k]} term {v:.4g}" for k, v in terms.items()))
    logvar = None
    if getattr(unwrap(model), "is_variational", False):
        logvar = unwrap(model)._encode(x, y).chunk(2, dim=-1)[1]  # (B, D): the encoder's own output, before exp()
        finite = logvar[torch.isfinite(logvar)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (math.nan, math.nan)
        parts.append(f"encoder log-variance in [{lo:.3g}, {hi:.3g}]" + ("" if finite.numel() == logvar.numel() else " and non-finite"))
    if not torch.isfinite(x).all():
        cause = "the batch itself holds NaN or Inf"
    elif float(x.abs().max()) > 1e6:
        cause = f"the data's values reach {float(x.abs().max()):.3g}; scale them (data.scaling = 'standard' or 'minmax')"
    elif logvar is not None and (not torch.isfinite(logvar).all() or float(logvar.abs().max()) > 60
                                 or not math.isfinite(terms.get("kl", 0.0))):
        cause = "the encoder's log-variance ran away, so exp() of it overflowed or underflowed (usually a learning rate too high)"
    elif not math.isfinite(terms.get("nll", 0.0)):
        lik = getattr(unwrap(model), "likelihood", "the")
        cause = f"the decoder's output left the range the {lik} likelihood can score (a scale collapsed to 0 or a logit exploded)"
    elif not torch.isfinite(gnorm):
        cause = "a gradient overflowed although the loss was finite"
    advice = f"--set train.lr={cfg.lr / 2:g}"
    advice += ", --set train.grad_clip=10" if cfg.grad_clip is None else f", a smaller train.grad_clip (now {cfg.grad_clip:g})"
    if cfg.on_nan == "stop":
        advice += " or --on-nan rollback"
    return "; ".join(parts) + (f". Likely cause: {cause}" if cause else "") + f". What to try: {advice}"


def fit(model: torch.nn.Module, data: Data, cfg: TrainConfig, run_dir: str | Path | None = None,
        resume: bool = False, log: RunLog | None = None) -> TrainResult:
    """Train `model` on `data` with `cfg`. With `run_dir`, write metrics.jsonl, training checkpoints
    (``checkpoints/step-N/``: at each epoch's end, every ``checkpoint_every`` steps and on SIGINT/
    SIGTERM) and the best model (``model/``); `resume` continues exactly from the newest checkpoint.
    Returns the model holding the weights of the best validation epoch (the last if no validation)."""
    run = Path(run_dir) if run_dir is not None else None
    log = log or RunLog(run, is_main=current().is_main, progress=cfg.progress)  # creates the run directory (main process)
    with (RunLock(run) if run is not None and log.is_main else nullcontext()), StopSignals(log) as signals:
        return _fit(model, data, cfg, run, resume, log, signals)


def _fit(model, data: Data, cfg: TrainConfig, run: Path | None, resume: bool, log: RunLog, signals: StopSignals) -> TrainResult:
    device = data.device
    ctx = current()  # one process, or this rank of a torchrun job
    torch.manual_seed(rank_seed(cfg.seed, ctx))
    model.to(device)
    net = wrap(model, ctx, device)  # what the forward pass goes through (DDP under torchrun)
    if cfg.compile:
        net = torch.compile(net)
    opt = make_optimizer(model, cfg)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    scaler = make_scaler(cfg, device)
    sampler = BatchSampler(data.n_train, cfg.batch_size, ctx, seed=cfg.seed)  # one global order of batches per epoch
    steps_per_epoch = len(sampler)
    # Position and counters. "batch" counts the steps done in the current, unfinished epoch.
    state = {"epoch": 0, "batch": 0, "step": 0, "best": math.inf, "best_epoch": None, "best_step": None,
             "bad_epochs": 0, "seconds": 0.0, "lr_scale": 1.0, "rollbacks": 0}
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps_per_epoch, cfg) * state["lr_scale"])
    objective = OBJECTIVES[cfg.objective]
    conditional = getattr(unwrap(model), "conditional", False)
    if conditional and data.y_train is None:
        raise VaekitError(f"a conditional model needs labels; data '{data.name}' has none")
    # The EMA copy is what validation, the best weights and the returned model use.
    ema = (torch.optim.swa_utils.AveragedModel(unwrap(model), multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                               use_buffers=True) if cfg.ema is not None else None)
    eval_model = ema.module if ema is not None else unwrap(model)
    history: list[dict[str, Any]] = []
    sums: dict[str, torch.Tensor] = {}  # the current epoch's per-term sums so far
    best_state: dict[str, torch.Tensor] | None = None

    def snapshot(every_rank: bool = False) -> dict[str, Any]:
        """Everything the rest of the run depends on besides the weights (live references). With
        `every_rank` (a checkpoint on disk; all ranks must call it), the RNG states of all ranks and
        the partial sums added over ranks."""
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        part = dict(sums)
        extra = {"scaler": scaler.state_dict()} if scaler is not None else {}
        if every_rank and ctx.distributed:
            rng["torch_ranks"] = all_gather(rng["torch"], ctx)
            if device.type == "cuda":
                rng["cuda_ranks"] = all_gather(rng["cuda"], ctx)
            part = {k: all_sum(torch.as_tensor(v).clone(), ctx) for k, v in sums.items()}
        snap = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng, "trainer": dict(state),
                "sums": part, "history": list(history), "best_model": best_state, **extra}
        if ema is not None:
            snap["ema"] = ema.state_dict()
        return snap

    def restore(snap: dict[str, Any], from_disk: bool = False) -> None:
        nonlocal sums, history, best_state
        opt.load_state_dict(snap["optimizer"])
        sched.load_state_dict(snap["scheduler"])
        if scaler is not None and "scaler" in snap:
            scaler.load_state_dict(snap["scaler"])
        if ema is not None:
            ema.load_state_dict(snap["ema"])
        rng = snap["rng"]
        # This rank's own noise streams: from its in-memory snapshot (rollback), or from the
        # checkpoint's per-rank list (a single process saves just its own).
        ranks = [rng["torch"]] if not from_disk else rng.get("torch_ranks", [rng["torch"]])
        cudas = [rng.get("cuda")] if not from_disk else rng.get("cuda_ranks", [rng.get("cuda")] * len(ranks))
        if not from_disk or len(ranks) == ctx.world_size:
            i = ctx.rank if from_disk else 0
            torch.set_rng_state(ranks[i])
            if device.type == "cuda" and cudas[i] is not None:
                torch.cuda.set_rng_state(cudas[i], device)
        else:  # another number of processes: same global batches, fresh noise streams per rank
            torch.manual_seed(rank_seed(cfg.seed, ctx) + 1_000_003 * snap["trainer"]["step"])
        state.clear()
        state.update(snap["trainer"])
        history, best_state = list(snap["history"]), snap["best_model"]
        # Partial sums were added over ranks when saved: rank 0 carries them on, the others restart from 0.
        keep = ctx.is_main or not ctx.distributed or not from_disk
        sums = {k: (v if keep else torch.zeros_like(torch.as_tensor(v))) for k, v in snap["sums"].items()}

    def remember_good() -> None:
        """The state a rollback returns to (in memory)."""
        nonlocal last_good
        if cfg.on_nan == "rollback":
            last_good = (copy.deepcopy(unwrap(model).state_dict()), copy.deepcopy(snapshot()))

    def checkpoint() -> None:
        if run is not None:
            snap = snapshot(every_rank=True)  # collective under torchrun: every rank takes part
            log.save(lambda: save_checkpoint(run, model, snap, state["step"], cfg.keep_checkpoints, state["best_step"]))
        remember_good()

    last_good: tuple[dict, dict] | None = None
    if resume:
        saved = checkpoint_dirs(run) if run is not None else []
        if not saved:
            raise VaekitError(f"cannot resume: no checkpoint in '{run}'")
        if ctx.is_main:
            clean_partial_writes(run)
            recover(run / "model")
        restore(load_checkpoint(saved[-1], model), from_disk=True)
        log.rewrite(history)  # metrics.jsonl as of the checkpoint: no gaps, no duplicates
        log.info(f"vaekit: resuming from epoch {state['epoch']}, step {state['step']} ({saved[-1].name})")
    remember_good()

    def interrupted(signum: int) -> TrainingInterrupted:
        name = signal.Signals(signum).name
        where = f"at epoch {state['epoch'] + (1 if state['batch'] else 0)}, step {state['step']}"
        if run is None:
            return TrainingInterrupted(signum, f"interrupted by {name} {where}; nothing saved (no run directory)")
        return TrainingInterrupted(signum, f"interrupted by {name} {where}; checkpoint saved; resume with: vaekit train --resume {run}")

    def stop_reason() -> str | None:
        """Why training ends after the epoch just finished (checked again after a resume)."""
        if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
            return f"early stop at epoch {state['epoch']}: no improvement in validation loss for {cfg.patience} epochs"
        if cfg.max_minutes is not None and state["seconds"] >= 60 * cfg.max_minutes:
            return f"time budget of {cfg.max_minutes:g} minutes reached at epoch {state['epoch']}"
        return None

    t_start = time.perf_counter() - state["seconds"]
    while state["epoch"] < cfg.epochs:
        if state["batch"] == 0 and state["epoch"] > 0 and (reason := stop_reason()):
            log.info(f"vaekit: {reason}")
            break
        epoch = state["epoch"] + 1
        sampler.set_epoch(state["epoch"])
        order = sampler.global_batches(device)  # the epoch's global batches of indices, (B,) each
        net.train()
        bad = None
        bar = log.bar(range(state["batch"], len(order)), len(order), f"epoch {epoch}/{cfg.epochs}", initial=state["batch"])
        # This rank's piece of each remaining global batch, made (or read from disk) as it is reached.
        pieces = data.iterate([shard(order[i], ctx) for i in range(state["batch"], len(order))])
        for i, (x, y) in zip(bar, pieces):  # x: (B, *shape), freshly binarised/dequantised if configured
            y = y if conditional else None  # (B,)
            beta = kl_weight(state["step"], steps_per_epoch, cfg)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                out = net(x, y, n_samples=cfg.samples)  # the nets in bf16/fp16 if asked; the distributions in fp32
            terms = objective(out, x, beta, cfg.free_bits)  # each (B,), fp32
            if ctx.distributed:  # DDP averages gradients over ranks: scale so that the average is that of the global mean
                loss = terms["loss"].sum() * (ctx.world_size / len(order[i]))
            else:
                loss = terms["loss"].mean()  # nats per example
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)  # true gradients, for the norm, clipping and the check
            else:
                loss.backward()
            gnorm = grad_norm(model, cfg.grad_clip)
            ok = torch.isfinite(loss) & torch.isfinite(gnorm)
            if scaler is not None:  # an fp16 gradient overflow is routine: the scaler skips the step and lowers the scale
                state["overflows"] = 0 if bool(torch.isfinite(gnorm)) else state.get("overflows", 0) + 1
                ok = torch.isfinite(loss) & torch.tensor(state["overflows"] < FP16_MAX_OVERFLOWS)
            stop_signum = signals.signum
            if ctx.distributed:  # every rank must agree to stop, or the next all-reduce waits for ever
                flags = all_max(torch.tensor([float(not bool(ok)), float(signals.signum or 0)], device=device), ctx)
                ok, stop_signum = flags[0] == 0, (int(flags[1]) or None)
            if not bool(ok):
                bad = f"training diverged at epoch {epoch}, step {state['step'] + 1}: " + diagnose(out, x, y, loss.detach(), gnorm, model, cfg)
                if scaler is not None and bool(torch.isfinite(loss)):
                    bad += (f" (fp16: the gradients overflowed {state['overflows']} steps in a row although the loss scaler "
                            f"lowered its scale to {scaler.get_scale():g}; try --set train.precision=bf16)")
                break
            if scaler is not None:
                scaler.step(opt)  # skipped when the gradients overflowed
                scaler.update()
            else:
                opt.step()
            with warnings.catch_warnings():  # a skipped first fp16 step makes the scheduler warn about the order of calls
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
                sched.step()
            if ema is not None:
                ema.update_parameters(unwrap(model))
            state["step"] += 1
            state["batch"] = i + 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0) + v.detach().sum()
            if i % 25 == 0 and log.progress:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if stop_signum is not None:
                checkpoint()
                raise interrupted(stop_signum)
            if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and i + 1 < len(order):
                checkpoint()
        if bad is not None:
            if cfg.on_nan != "rollback" or last_good is None or state["rollbacks"] >= cfg.max_rollbacks:
                if cfg.on_nan == "rollback":
                    bad += f" (gave up after {state['rollbacks']} rollbacks)"
                raise VaekitError(bad)
            rollbacks, lr_scale, failed_step = state["rollbacks"] + 1, state["lr_scale"] / 2, state["step"] + 1
            weights, snap = copy.deepcopy(last_good)
            unwrap(model).load_state_dict(weights)
            restore(snap)
            state.update(rollbacks=rollbacks, lr_scale=lr_scale)
            for g, base in zip(opt.param_groups, sched.base_lrs):  # the restored step with the halved rate
                g["lr"] = base * sched.lr_lambdas[0](sched.last_epoch)
            log.info(f"vaekit: non-finite loss or gradient at step {failed_step}; rolled back to step {state['step']} "
                     f"and halved the learning rate (x{lr_scale:g}); rollback {rollbacks} of {cfg.max_rollbacks}")
            continue

        record = {"epoch": epoch, "step": state["step"], "lr": opt.param_groups[0]["lr"],
                  "beta": kl_weight(max(state["step"] - 1, 0), steps_per_epoch, cfg)}
        record.update({f"train_{k}": float(all_sum(torch.as_tensor(v).clone(), ctx)) / data.n_train for k, v in sums.items()})
        if len(data.x_val):
            record.update({f"val_{k}": v for k, v in mean_terms(eval_model, data.x_val, cfg, data.y_val if conditional else None, ctx=ctx).items()})
        state["seconds"] = time.perf_counter() - t_start
        record["seconds"] = round(state["seconds"], 3)
        history.append(record)

        monitored = record.get("val_loss", record["train_loss"])
        improved = monitored < state["best"]
        if improved:
            state.update(best=monitored, best_epoch=epoch, best_step=state["step"], bad_epochs=0)
            best_state = {k: v.detach().clone() for k, v in eval_model.state_dict().items()}
            if run is not None:
                log.save(lambda: save_pretrained(eval_model, run / "model"))
        else:
            state["bad_epochs"] += 1
        state.update(epoch=epoch, batch=0)
        sums = {}  # the next epoch starts from here
        checkpoint()
        log.log(record)
        log.info(f"epoch {epoch}: " + " ".join(f"{k}={v:.4g}" for k, v in record.items()
                                              if k.startswith(("train_loss", "val_loss", "val_kl"))))
        stop_signum = signals.signum
        if ctx.distributed:
            stop_signum = int(all_max(torch.tensor([float(signals.signum or 0)], device=device), ctx)) or None
        if stop_signum is not None and state["epoch"] < cfg.epochs:
            raise interrupted(stop_signum)

    if best_state is not None:
        unwrap(model).load_state_dict(best_state)
    log.close()
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=state["best_epoch"], seconds=state["seconds"])
