"""All rank logic, in one module: everything else asks this one whether and how to be distributed.

vaekit scales with PyTorch's own engine: ``torchrun`` starts the processes and sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; this module reads them, joins the process group (``gloo`` on
CPU, ``nccl`` on CUDA) and provides the few operations the training loop needs:

- `Context.is_main`: rank 0 alone logs, checkpoints, draws pictures and writes reports;
- `BatchSampler` (with ``set_epoch``, like torch's DistributedSampler): one global order of
  batches per epoch, the same on every rank, fixed by (seed, epoch); `shard` splits each global
  batch into contiguous per-rank pieces, so ``train.batch_size`` is the global batch whatever the
  number of processes, and every example is used once per epoch (no padded duplicates);
- `rank_seed`: rank r seeds torch with ``seed + r`` (rank 0 keeps the single-process seed), so
  ranks draw different noise for their different examples;
- `all_sum`: metrics travel as sums (and counts), never as averages of averages;
- `wrap`: DistributedDataParallel around the model, so the objective computed from its forward
  output has its gradients all-reduced; `checkpoint.unwrap` removes it before anything is saved,
  so a checkpoint written by N processes loads in 1 and vice versa.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def from_env() -> Context:
    """The process's place in a torchrun job (a single process outside one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    return Context(rank=int(os.environ["RANK"]), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def setup(device_name: str) -> tuple[Context, torch.device, bool]:
    """Join the process group if launched by torchrun. Returns (context, this rank's device, whether
    this call started the group, so that the caller ends it)."""
    import torch.distributed as dist

    from vaekit.training.devices import resolve_device

    ctx = from_env()
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    started = False
    if ctx.distributed and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        started = True
    return ctx, device, started


def teardown(started: bool) -> None:
    """End the process group this process started. The DDP wrapper (and its reducer, which holds
    gloo work) sits in reference cycles: collect it first, while the group is alive, or its
    destruction at interpreter exit can abort the process ("terminate called without an active
    exception")."""
    import gc

    import torch.distributed as dist

    if started and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def current() -> Context:
    """The context of the process group this process is in (single process if none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        ctx = from_env()
        return Context(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=ctx.local_rank)
    return Context()


def rank_seed(seed: int, ctx: Context) -> int:
    return seed + ctx.rank


def shard(idx: torch.Tensor, ctx: Context) -> torch.Tensor:
    """This rank's contiguous piece of a global batch of indices (sizes differ by at most one)."""
    if not ctx.distributed:
        return idx
    return torch.tensor_split(idx, ctx.world_size)[ctx.rank]


def _comm_device() -> torch.device:
    """Where the process group's collectives take tensors: the rank's GPU under nccl, else the CPU."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _reduce(t: torch.Tensor, ctx: Context, op: str) -> torch.Tensor:
    if ctx.distributed:
        import torch.distributed as dist

        x = t.to(_comm_device())  # a CPU tensor (an RNG state, a counter) travels through the GPU under nccl
        dist.all_reduce(x, op=getattr(dist.ReduceOp, op))
        if x is not t:
            t.copy_(x)
    return t


def all_sum(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The sum of `t` over all ranks (in place and returned, on `t`'s device)."""
    return _reduce(t, ctx, "SUM")


def all_max(t: torch.Tensor, ctx: Context) -> torch.Tensor:
    """The elementwise maximum of `t` over all ranks (in place and returned): flags every rank must
    agree on (stop, diverged), or the next collective waits for ever."""
    return _reduce(t, ctx, "MAX")


def all_gather(t: torch.Tensor, ctx: Context) -> list[torch.Tensor]:
    """`t` from every rank, in rank order, on `t`'s device (same shape on every rank)."""
    if not ctx.distributed:
        return [t]
    import torch.distributed as dist

    x = t.to(_comm_device())
    out = [torch.empty_like(x) for _ in range(ctx.world_size)]
    dist.all_gather(out, x)
    return [o.to(t.device) for o in out]


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def wrap(model: torch.nn.Module, ctx: Context, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` under torchrun; the model itself otherwise."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class BatchSampler(torch.utils.data.Sampler):
    """The batches of an epoch, for every rank of a job (a ``batch_sampler`` for a ``DataLoader``).

    Epoch e's order is the (e+1)-th ``randperm(n)`` drawn from a generator seeded with `seed`: a
    function of (seed, epoch) alone, so `set_epoch` is all a resume needs, and one process or N
    see the same global batches. `global_batches` gives them (B,) each, the last one short if
    `batch_size` does not divide n; iterating gives this rank's `shard` of each, as index lists.
    """

    def __init__(self, n: int, batch_size: int, ctx: Context, seed: int = 0, shuffle: bool = True):
        self.n, self.batch_size, self.ctx, self.seed, self.shuffle = n, batch_size, ctx, seed, shuffle
        self.epoch = 0
        self._at = (0, torch.Generator().manual_seed(seed))  # (epoch, generator as that epoch begins)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        at, gen = self._at
        if at > self.epoch:  # going back (a rollback): draw again from the start
            at, gen = 0, torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch - at):
            torch.randperm(self.n, generator=gen)
        self._at = (self.epoch, gen)
        return gen

    def global_batches(self, device: str | torch.device = "cpu") -> list[torch.Tensor]:
        if self.shuffle:
            gen = torch.Generator()
            gen.set_state(self._generator().get_state())  # a copy: asking twice gives the same order
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.arange(self.n)
        return list(order.to(device).split(self.batch_size))

    def __iter__(self) -> Iterator[list[int]]:
        return (shard(b, self.ctx).tolist() for b in self.global_batches())

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)
