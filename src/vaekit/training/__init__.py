"""Training: the loop, its state, schedules, checkpoints, the run log and lock, distributed.

- `loop`: `fit`, one straight training loop for every trainable model;
- `state`: `TrainState` and `Trainer`, what a run carries from step to step;
- `schedules`: learning-rate and KL-weight schedules as pure functions of the step;
- `checkpoints`: plain-data checkpoints (JSON + safetensors), atomic writes, recovery;
- `runlog`: the side effects only the main process performs (metrics.jsonl, TensorBoard, bars);
- `lock`: one writer per run directory;
- `distributed`: every rank decision of torchrun/DDP in one place;
- `devices`: a device name to a `torch.device`;
- `lanes`: independent models trained side by side in worker processes.
"""

from __future__ import annotations

import importlib

# The names of the old `vaekit.training` module, kept for one release (imported lazily).
_OLD_MODULE = "vaekit.training.loop"
_OLD_NAMES = ("mean_terms", "TrainResult", "StopSignals", "diagnose", "fit", "lr_factor", "kl_weight")


def __getattr__(name: str):
    if name in _OLD_NAMES:
        return getattr(importlib.import_module(_OLD_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
