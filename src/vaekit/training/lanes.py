"""Train independent models side by side: one worker process per lane, the CPU's threads split
between the lanes.

The tour trains six models that do not depend on each other. On a CPU, one small MLP uses a
second thread poorly: on the 2-core reference machine an epoch of the tour's deep autoencoder takes
11.8 s with two threads and 16.5 s with one, so two one-thread workers train two models in 16.5 s
per epoch where one after the other at two threads takes 23.6 s (1.4x the throughput).

Each worker is a fresh interpreter that receives the data once (safetensors bytes through a pipe:
no shared-memory segment, which containers often cap at 64 MB, and no pickle: messages are JSON
headers plus tensors, plain data like vaekit's files), trains each job it is handed with the same
seeded initial weights as `train_one` in this process, and returns the weights; the parent
rebuilds the model and loads them. A model trained in a worker is bit-for-bit the one `train_one` trains with
the same number of threads (tested). On a GPU, or with one lane, jobs run here, one after another.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vaekit.config import ModelConfig, TrainConfig
from vaekit.data.prepared import Data
from vaekit.errors import VaekitError

_FIELDS = ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test")


@dataclass(frozen=True)
class Job:
    """One model to train: its name (for messages), its model config and its training config."""

    name: str
    model: ModelConfig
    train: TrainConfig


@dataclass
class Trained:
    model: Any
    history: list[dict]
    seconds: float


def train_one(job: Job, data: Data, quiet: bool = False) -> Trained:
    """Train `job` here: initial weights seeded with 0, so a model does not depend on what ran before."""
    from vaekit.models import build_model
    from vaekit.training.loop import fit
    from vaekit.training.runlog import RunLog

    torch.manual_seed(0)
    model = build_model(job.model, data.shape)
    t = time.perf_counter()
    res = fit(model, data, job.train, log=RunLog(None, progress=job.train.progress, quiet=quiet))
    return Trained(res.model.eval(), res.history, time.perf_counter() - t)


def _send(f: Any, header: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> None:
    """One message: its lengths, a JSON header and (optionally) tensors as safetensors bytes.
    Plain data both ways, as in vaekit's files: nothing that runs code is ever unpickled."""
    import json
    import struct

    from safetensors.torch import save

    head = json.dumps(header).encode()
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}) if tensors else b""
    f.write(struct.pack("<QQ", len(head), len(blob)))
    f.write(head)
    f.write(blob)
    f.flush()


def _exactly(f: Any, n: int) -> bytes:
    out = f.read(n)
    if len(out) != n:
        raise EOFError("the other process closed the pipe")
    return out


def _receive(f: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    import json
    import struct

    from safetensors.torch import load

    n_head, n_blob = struct.unpack("<QQ", _exactly(f, 16))
    header = json.loads(_exactly(f, n_head))
    return header, (load(_exactly(f, n_blob)) if n_blob else {})


def _job_header(job: Job) -> dict[str, Any]:
    return {"name": job.name, "model": dataclasses.asdict(job.model), "train": dataclasses.asdict(job.train)}


def _job_from(header: dict[str, Any]) -> Job:
    return Job(header["name"], ModelConfig(**header["model"]), TrainConfig(**header["train"]))


def _serve() -> None:
    """A worker (`python -m vaekit.training.lanes`): reads the data, then jobs, from stdin; writes each
    job's weights, history and seconds (or its error) to stdout. Anything the training prints goes
    to stderr, so it cannot mix with the replies."""
    import os
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends the workers
    reply = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inbox = sys.stdin.buffer
    meta, arrays = _receive(inbox)
    torch.set_num_threads(meta.pop("threads"))
    data = Data(**{**meta, "shape": tuple(meta["shape"])}, **{k: arrays.get(k) for k in _FIELDS})
    while True:
        try:
            header, _ = _receive(inbox)
        except EOFError:
            return
        try:
            done = train_one(_job_from(header), data, quiet=True)
            _send(reply, {"ok": True, "history": done.history, "seconds": done.seconds}, done.model.state_dict())
        except Exception as e:
            _send(
                reply,
                {
                    "ok": False,
                    "type": type(e).__name__,
                    "message": str(e).splitlines()[0] if str(e) else "",
                    "ours": isinstance(e, VaekitError),
                },
            )


def _lane(worker: Any, queue: list[Job], lock: Any, results: Any) -> None:
    """Hand `worker` jobs from `queue` until none is left, putting (job, reply) on `results`."""
    while True:
        with lock:
            if not queue:
                return
            job = queue.pop(0)
        try:
            _send(worker.stdin, _job_header(job))
            results.put((job, _receive(worker.stdout)))
        except (OSError, EOFError, ValueError) as e:
            results.put(
                (
                    job,
                    (
                        {
                            "ok": False,
                            "type": "RuntimeError",
                            "ours": False,
                            "message": f"the worker training it stopped ({type(e).__name__})",
                        },
                        {},
                    ),
                )
            )
            return


def _rebuild(job: Job, reply: tuple[dict[str, Any], dict[str, torch.Tensor]], data: Data) -> Trained:
    from vaekit.models import build_model

    header, state = reply
    if not header["ok"]:
        if header["ours"]:
            raise VaekitError(f"{job.name}: {header['message']}")
        raise RuntimeError(f"training {job.name} failed in a worker: {header['type']}: {header['message']}")
    torch.manual_seed(0)
    model = build_model(job.model, data.shape)
    model.load_state_dict(state)
    return Trained(model.eval(), header["history"], header["seconds"])


def train_side_by_side(
    jobs: list[Job], data: Data, lanes: int = 2, on_done: Callable[[Job, Trained], None] | None = None
) -> dict[str, Trained]:
    """Train `jobs` (in the order given: put the longest first) on `lanes` worker processes with
    max(1, threads // lanes) threads each; `on_done(job, trained)` is called as each finishes.
    Returns {job.name: Trained}. Runs them here, in order, on a GPU, when lanes <= 1, or when
    this process has a single thread to give.

    Workers are fresh interpreters (`python -m vaekit.training.lanes`), not forks or multiprocessing
    spawns: nothing of the caller's script is re-imported, so it needs no `__main__` guard."""
    import queue as queues
    import subprocess
    import sys
    import threading

    done: dict[str, Trained] = {}
    lanes = min(lanes, torch.get_num_threads())  # one thread in all: lanes would only take turns on it
    if lanes <= 1 or data.device.type != "cpu" or data.streamed or len(jobs) <= 1:
        for job in jobs:
            done[job.name] = train_one(job, data)
            if on_done:
                on_done(job, done[job.name])
        return done
    arrays = {k: getattr(data, k) for k in _FIELDS if getattr(data, k) is not None}
    meta = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.name not in _FIELDS}
    meta["threads"] = max(1, torch.get_num_threads() // lanes)
    todo = [dataclasses.replace(j, train=dataclasses.replace(j.train, progress=False)) for j in jobs]
    workers = [
        subprocess.Popen([sys.executable, "-m", "vaekit.training.lanes"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        for _ in range(min(lanes, len(jobs)))
    ]
    try:
        results: queues.Queue = queues.Queue()
        lock = threading.Lock()
        for w in workers:
            _send(w.stdin, meta, arrays)
        threads_ = [threading.Thread(target=_lane, args=(w, todo, lock, results), daemon=True) for w in workers]
        for t in threads_:
            t.start()
        while len(done) < len(jobs):
            job, reply = results.get()
            done[job.name] = _rebuild(job, reply, data)
            if on_done:
                on_done(job, done[job.name])
    finally:
        for w in workers:  # after the last job, or on any error or Ctrl-C: no worker outlives the call
            w.kill()
            w.wait()
            for f in (w.stdin, w.stdout):
                try:
                    f.close()
                except OSError:
                    pass
    return done


if __name__ == "__main__":
    _serve()
