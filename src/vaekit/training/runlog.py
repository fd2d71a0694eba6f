"""The one place for side effects that only the main process performs.

Logging metrics (``metrics.jsonl``, and TensorBoard when it is installed), progress bars and
checkpoint writes all go through `RunLog`. Under torchrun only rank 0 has ``is_main``; the others
get a `RunLog` that does nothing, so the training loop never branches on rank.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# Set by the CLI: progress bars are drawn only when stderr is a terminal. The Python API leaves it
# off, so notebooks (whose stderr is no terminal) keep their bars.
BARS_ON_A_TERMINAL_ONLY = False


class RunLog:
    def __init__(self, run_dir: str | Path | None, is_main: bool = True, progress: bool = True, quiet: bool = False):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.is_main = is_main
        self.quiet = quiet  # no messages (a worker of `parallel.train_side_by_side`: the parent reports)
        self.progress = progress and is_main
        self._tb = None
        if self.run_dir is not None and is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
                self._tb = None

    @property
    def metrics_path(self) -> Path | None:
        return self.run_dir / "metrics.jsonl" if self.run_dir is not None else None

    def bar(self, iterable: Iterable, total: int, desc: str, initial: int = 0):
        from tqdm.auto import tqdm

        off = not self.progress or (BARS_ON_A_TERMINAL_ONLY and not sys.stderr.isatty())
        return tqdm(iterable, total=total, desc=desc, leave=False, disable=off, dynamic_ncols=True, initial=initial)

    def log(self, record: dict[str, Any]) -> None:
        """Append one epoch's metrics."""
        if not self.is_main or self.metrics_path is None:
            return
        from vaekit.training.checkpoints import open_no_follow

        # appended in place (a resume rewrites it whole), but never through a link
        with os.fdopen(open_no_follow(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch",):
                    self._tb.add_scalar(k, v, record.get("epoch", 0))
            self._tb.flush()

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace metrics.jsonl by `records` atomically (a resume restores the checkpoint's history)."""
        if not self.is_main or self.metrics_path is None:
            return
        from vaekit.training.checkpoints import write_text_durable

        write_text_durable(self.metrics_path, "".join(json.dumps(r) + "\n" for r in records))

    def save(self, write: Callable[[], Any]) -> None:
        """Run a checkpoint/picture writer on the main process only."""
        if self.is_main:
            write()

    def info(self, msg: str) -> None:
        """A note or warning, on stderr."""
        if self.is_main and not self.quiet:
            print(msg, file=sys.stderr)

    def report(self, msg: str) -> None:
        """A result as training goes (an epoch's losses, where it resumed), on stdout: stderr keeps
        only warnings and, if the run fails, its one-line error."""
        if self.is_main and not self.quiet:
            print(msg, flush=True)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
