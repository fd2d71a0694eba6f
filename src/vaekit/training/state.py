"""What a training run carries from step to step, in one object.

`TrainState` is the run's position and counters as plain data (saved in every checkpoint).
`Trainer` owns everything else the loop changes: the optimiser, the learning-rate schedule, the
fp16 loss scaler, the EMA of the weights, the batch sampler, the metrics history, the epoch's
partial sums and the best weights. It knows how to take one optimisation step, how to snapshot and
restore all of it (a checkpoint on disk, or the in-memory state a rollback returns to), and how to
make every rank agree on a flag. The loop itself (`training.fit`) reads straight through and calls
these.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaekit.config import TrainConfig
from vaekit.data.prepared import Data
from vaekit.errors import TrainingInterrupted, VaekitError
from vaekit.objectives.elbo import Progress
from vaekit.registry import OBJECTIVES
from vaekit.training.checkpoints import (
    clean_partial_writes,
    newest_intact,
    recover,
    save_checkpoint,
    save_pretrained,
    unwrap,
)
from vaekit.training.distributed import BatchSampler, all_gather, all_max, all_sum, current, rank_seed, wrap
from vaekit.training.runlog import RunLog
from vaekit.training.schedules import kl_weight, lr_factor

FP16_MAX_OVERFLOWS = 30  # consecutive overflowing fp16 steps before it counts as divergence


@dataclass
class TrainState:
    """The run's position and counters: plain numbers, saved in every checkpoint as "trainer"."""

    epoch: int = 0  # finished epochs
    batch: int = 0  # steps done in the current, unfinished epoch
    step: int = 0  # optimiser steps so far
    best: float = math.inf  # the best monitored loss (validation if any, else training)
    best_epoch: int | None = None
    best_step: int | None = None
    bad_epochs: int = 0  # epochs since the best one (early stopping)
    seconds: float = 0.0  # training time at the end of the last finished epoch
    lr_scale: float = 1.0  # halved by each rollback
    rollbacks: int = 0
    overflows: int = 0  # fp16: consecutive steps whose gradients overflowed

    @classmethod
    def from_dict(cls, d: dict[str, Any], steps_per_epoch: int | None = None) -> TrainState:
        """From a checkpoint's plain data, checked: counters are non-negative integers no run reaches
        beyond (epochs up to the config's bound, steps up to 2**53), the step inside an epoch
        below `steps_per_epoch`, the learning-rate scale in (0, 1], the time non-negative, the
        best loss a number (a damaged or hand-edited training.json is refused, not trained on)."""
        from vaekit.config import MAX_EPOCHS

        out = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue  # older checkpoints lack newer fields: their defaults
            v = d[f.name]
            counter = f.type in ("int", "int | None")
            ok = (v is None and "None" in f.type) or (
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2**53
                if counter
                else isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
            )
            if ok and v is not None:
                ok = {
                    "epoch": v <= MAX_EPOCHS,
                    "best_epoch": v <= MAX_EPOCHS,
                    "lr_scale": 0 < v <= 1,
                    "seconds": 0 <= v < math.inf,
                    "batch": steps_per_epoch is None or v < steps_per_epoch,
                }.get(f.name, True)
            if not ok:
                raise ValueError(f"trainer state '{f.name}' is {v!r}")
            out[f.name] = v
        return cls(**out)


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


def grad_norm(params: list[torch.Tensor], clip: float | None) -> torch.Tensor:
    """The global L2 norm of the gradients of `params` (clipping them to `clip` if given): a 0-dim tensor."""
    params = [p for p in params if p.grad is not None]
    if clip is not None:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    if not params:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach()) for p in params]))


class Trainer:
    """The optimiser, schedule, scaler, EMA, sampler and state of one run of `model` on `data`."""

    def __init__(self, model: torch.nn.Module, data: Data, cfg: TrainConfig, run: Path | None, log: RunLog):
        self.device, self.ctx = data.device, current()  # one process, or this rank of a torchrun job
        torch.manual_seed(rank_seed(cfg.seed, self.ctx))
        self.model, self.data, self.cfg, self.run, self.log = model.to(self.device), data, cfg, run, log
        self.net = wrap(model, self.ctx, self.device)  # what the forward pass goes through (DDP under torchrun)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.opt = make_optimizer(model, cfg)
        self.params = list(model.parameters())  # listed once: walking the module tree every step costs ~0.3 ms
        self.amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self.scaler = make_scaler(cfg, self.device)
        self.sampler = BatchSampler(data.n_train, cfg.batch_size, self.ctx, seed=cfg.seed)  # one global order per epoch
        self.steps_per_epoch = len(self.sampler)
        self.state = TrainState()
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: self.lr_multiplier(s))
        self.objective: Callable = OBJECTIVES.get(cfg.objective)
        # The EMA copy is what validation, the best weights and the returned model use.
        self.ema = (
            torch.optim.swa_utils.AveragedModel(
                unwrap(model), use_buffers=True, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema)
            )
            if cfg.ema is not None
            else None
        )
        self.history: list[dict[str, Any]] = []
        self.sums: dict[str, torch.Tensor] = {}  # the current epoch's per-term sums so far
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.last_good: tuple[dict, dict] | None = None  # what a rollback returns to

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else unwrap(self.model)

    def lr_multiplier(self, step: int) -> float:
        """The base learning rate's multiplier at optimiser step `step`: the schedule, times the
        rollbacks' halvings."""
        return lr_factor(step, self.steps_per_epoch, self.cfg) * self.state.lr_scale

    # -- one optimisation step -------------------------------------------------------------------
    def forward_backward(self, x: torch.Tensor, y: torch.Tensor | None, global_batch: int):
        """Forward, objective and backward for x: (B, *shape). Returns (model output, per-example
        terms (B,), the loss, the gradient norm, ok: a 0-dim bool tensor, False when the step
        must not be taken)."""
        s, cfg = self.state, self.cfg
        beta = kl_weight(s.step, self.steps_per_epoch, cfg)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            out = self.net(x, y, n_samples=cfg.samples)  # the nets in bf16/fp16 if asked; the distributions in fp32
        at = Progress(epoch=s.step / self.steps_per_epoch, n_data=self.data.n_train)
        terms = self.objective(out, x, beta, cfg.free_bits, cfg=cfg, at=at)  # each (B,), fp32
        if (
            self.ctx.distributed
        ):  # DDP averages gradients over ranks: scale so that the average is that of the global mean
            loss = terms["loss"].sum() * (self.ctx.world_size / global_batch)
        else:
            loss = terms["loss"].mean()  # nats per example
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)  # true gradients, for the norm, clipping and the check
        else:
            loss.backward()
        gnorm = grad_norm(self.params, cfg.grad_clip)
        ok = torch.isfinite(loss) & torch.isfinite(gnorm)
        if (
            self.scaler is not None
        ):  # an fp16 gradient overflow is routine: the scaler skips the step and lowers the scale
            s.overflows = 0 if bool(torch.isfinite(gnorm)) else s.overflows + 1
            ok = torch.isfinite(loss) & torch.tensor(s.overflows < FP16_MAX_OVERFLOWS)
        return out, terms, loss, gnorm, ok

    def apply_step(self, terms: dict[str, torch.Tensor]) -> None:
        """Take the optimiser, schedule and EMA step and add the batch's terms to the epoch's sums."""
        if self.scaler is not None:
            self.scaler.step(self.opt)  # skipped when the gradients overflowed
            self.scaler.update()
            with (
                warnings.catch_warnings()
            ):  # a skipped first fp16 step makes the scheduler warn about the order of calls
                warnings.filterwarnings(
                    "ignore", "Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`"
                )
                self.sched.step()
        else:
            self.opt.step()
            self.sched.step()
        if self.ema is not None:
            self.ema.update_parameters(unwrap(self.model))
        self.state.step += 1
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0) + v.detach().sum()

    def overflow_note(self, loss: torch.Tensor) -> str:
        """Why an fp16 step failed with a finite loss (the scaler could not recover), or ''."""
        if self.scaler is None or not bool(torch.isfinite(loss)):
            return ""
        return (
            f" (fp16: the gradients overflowed {self.state.overflows} steps in a row although the loss scaler "
            f"lowered its scale to {self.scaler.get_scale():g}; try --set train.precision=bf16)"
        )

    def agree(self, failed: bool | torch.Tensor, signum: int | None) -> tuple[bool, int | None]:
        """(failed, signal) as every rank must see them: any rank's failure or signal stops them all,
        or the next all-reduce would wait for ever."""
        if not self.ctx.distributed:
            return bool(failed), signum
        flags = all_max(torch.tensor([float(bool(failed)), float(signum or 0)], device=self.device), self.ctx)
        return bool(flags[0] != 0), (int(flags[1]) or None)

    # -- the end of an epoch ---------------------------------------------------------------------
    def train_means(self) -> dict[str, float]:
        """The epoch's training terms: sums over ranks / examples (never means of means)."""
        return {
            f"train_{k}": float(all_sum(torch.as_tensor(v).clone(), self.ctx)) / self.data.n_train
            for k, v in self.sums.items()
        }

    def close_epoch(self, record: dict[str, Any]) -> None:
        """Record the finished epoch: history, the best weights (saved as RUN/model), the early-stop
        count, the position; then checkpoint."""
        s = self.state
        self.history.append(record)
        monitored = record.get("val_loss", record["train_loss"])
        if monitored < s.best:
            s.best, s.best_epoch, s.best_step, s.bad_epochs = monitored, record["epoch"], s.step, 0
            self.best_weights = {k: v.detach().clone() for k, v in self.eval_model.state_dict().items()}
            if self.run is not None:
                self.log.save(lambda: save_pretrained(self.eval_model, self.run / "model"))
        else:
            s.bad_epochs += 1
        s.epoch, s.batch = record["epoch"], 0
        self.sums = {}  # the next epoch starts from here
        self.checkpoint()

    # -- snapshots, checkpoints, rollback, resume ------------------------------------------------
    def snapshot(self, every_rank: bool = False) -> dict[str, Any]:
        """Everything the rest of the run depends on besides the weights (live references). With
        `every_rank` (a checkpoint on disk; all ranks must call it), the RNG states of all ranks and
        the partial sums added over ranks."""
        ctx, device = self.ctx, self.device
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        part = dict(self.sums)
        if every_rank and ctx.distributed:
            rng["torch_ranks"] = all_gather(rng["torch"], ctx)
            if device.type == "cuda":
                rng["cuda_ranks"] = all_gather(rng["cuda"], ctx)
            part = {k: all_sum(torch.as_tensor(v).clone(), ctx) for k, v in self.sums.items()}
        snap = {
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "rng": rng,
            "trainer": dataclasses.asdict(self.state),
            "sums": part,
            "history": list(self.history),
            "best_model": self.best_weights,
        }
        if self.scaler is not None:
            snap["scaler"] = self.scaler.state_dict()
        if self.ema is not None:
            snap["ema"] = self.ema.state_dict()
        return snap

    def restore(self, snap: dict[str, Any], from_disk: bool = False) -> None:
        """Put back what `snapshot` took (the weights are the caller's)."""
        ctx, device = self.ctx, self.device
        self.opt.load_state_dict(snap["optimizer"])
        self.sched.load_state_dict(snap["scheduler"])
        if self.scaler is not None and "scaler" in snap:
            self.scaler.load_state_dict(snap["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(snap["ema"])
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
            torch.manual_seed(rank_seed(self.cfg.seed, ctx) + 1_000_003 * snap["trainer"]["step"])
        self.state = TrainState.from_dict(snap["trainer"])
        self.history, self.best_weights = list(snap["history"]), snap["best_model"]
        # Partial sums were added over ranks when saved: rank 0 carries them on, the others restart from 0.
        keep = ctx.is_main or not ctx.distributed or not from_disk
        self.sums = {k: (v if keep else torch.zeros_like(torch.as_tensor(v))) for k, v in snap["sums"].items()}

    def remember_good(self) -> None:
        """Keep, in memory, the state a rollback returns to."""
        if self.cfg.on_nan == "rollback":
            self.last_good = (copy.deepcopy(unwrap(self.model).state_dict()), copy.deepcopy(self.snapshot()))

    def checkpoint(self) -> None:
        """Write RUN/checkpoints/step-N (collective under torchrun: every rank takes part)."""
        if self.run is not None:
            snap, s = self.snapshot(every_rank=True), self.state
            self.log.save(
                lambda: save_checkpoint(self.run, self.model, snap, s.step, self.cfg.keep_checkpoints, s.best_step)
            )
        self.remember_good()

    def rollback(self, failure: str) -> None:
        """After a non-finite step: return to the last good state with half the learning rate, or
        (on_nan = "stop", or rollbacks used up) raise the diagnosis."""
        s, cfg = self.state, self.cfg
        if cfg.on_nan != "rollback" or self.last_good is None or s.rollbacks >= cfg.max_rollbacks:
            raise VaekitError(
                failure + (f" (gave up after {s.rollbacks} rollbacks)" if cfg.on_nan == "rollback" else "")
            )
        rollbacks, lr_scale, failed_step = s.rollbacks + 1, s.lr_scale / 2, s.step + 1
        weights, snap = copy.deepcopy(self.last_good)
        unwrap(self.model).load_state_dict(weights)
        self.restore(snap)
        self.state.rollbacks, self.state.lr_scale = rollbacks, lr_scale
        for g, base in zip(self.opt.param_groups, self.sched.base_lrs):  # the restored step with the halved rate
            g["lr"] = base * self.lr_multiplier(self.sched.last_epoch)
        self.log.info(
            f"vaekit: non-finite loss or gradient at step {failed_step}; rolled back to step {self.state.step} "
            f"and halved the learning rate (x{lr_scale:g}); rollback {rollbacks} of {cfg.max_rollbacks}"
        )

    def resume(self) -> None:
        """Continue exactly from the newest intact checkpoint of the run directory (saying which
        newer ones were skipped as damaged, and why)."""
        run = self.run
        if run is None:
            raise VaekitError("cannot resume: no run directory")
        if self.ctx.is_main:
            clean_partial_writes(run)
            recover(run / "model")
        found, snap, skipped = newest_intact(
            run, self.model, check=lambda s: TrainState.from_dict(s["trainer"], self.steps_per_epoch)
        )
        for s in skipped:
            self.log.info(f"vaekit: skipped damaged checkpoint {s}")
        self.restore(snap, from_disk=True)
        self.log.rewrite(self.history)  # metrics.jsonl as of the checkpoint: no gaps, no duplicates
        self.log.report(f"vaekit: resuming at {self.position()} ({found.name})")

    def position(self) -> str:
        """Where the run stands, in the numbering every message uses: epochs count from 1, the
        current one is the one in progress."""
        s = self.state
        if s.batch or not s.epoch:
            return f"epoch {s.epoch + 1}, step {s.step}"
        return f"epoch {s.epoch}, step {s.step} (the end of the epoch)"

    def interrupted(self, signum: int) -> TrainingInterrupted:
        """The exception that ends the run on a signal, saying where and how to resume."""
        name, where = signal.Signals(signum).name, f"at {self.position()}"
        if self.run is None:
            return TrainingInterrupted(signum, f"interrupted by {name} {where}; nothing saved (no run directory)")
        return TrainingInterrupted(
            signum, f"interrupted by {name} {where}; checkpoint saved; resume with: vaekit train --resume {self.run}"
        )

    def stop_reason(self) -> str | None:
        """Why training ends after the epoch just finished (checked again after a resume)."""
        s, cfg = self.state, self.cfg
        if cfg.patience is not None and s.bad_epochs >= cfg.patience:
            return f"early stop at epoch {s.epoch}: no improvement in validation loss for {cfg.patience} epochs"
        if cfg.max_minutes is not None and s.seconds >= 60 * cfg.max_minutes:
            return f"time budget of {cfg.max_minutes:g} minutes reached at epoch {s.epoch}"
        return None
