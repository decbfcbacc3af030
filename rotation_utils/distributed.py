"""More than one process: PyTorch's distributed data parallel (DDP) as a few plain functions.

The same ``rotation-course train`` runs on a laptop or under ``torchrun``::

    torchrun --standalone --nproc_per_node=2 -m rotation_utils.cli train --images DIR --out RUN

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`init` reads them and joins
the process group (NCCL on GPUs, gloo on CPUs). With no such variables every function here is
a no-op for one process, so the training loop needs no second code path. Rank 0 alone prints,
logs and writes checkpoints; every rank trains on its own share of each epoch
(``torch.utils.data.distributed.DistributedSampler``) and validates its own share of the
validation samples, and the errors are gathered so that every rank sees the same metrics and
stops at the same epoch. Sources: PyTorch's DDP tutorial and torchvision's
``references/classification`` (``utils.init_distributed_mode``); nanoGPT's ``train.py`` for
one loop that runs with or without ``torchrun``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Context", "init", "context", "barrier", "all_reduce_sum", "all_gather_objects",
           "any_rank", "broadcast_buffers", "shutdown"]


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` (0 … world_size − 1), ``local_rank`` (its GPU on this
    machine), ``world_size`` (processes in all) and ``backend`` (None for one process)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that prints and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1


def _from_environment() -> Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Context(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)


def init(device=None) -> Context:
    """Join the process group that ``torchrun`` describes in the environment, once.

    device: ``"cuda"``/``"cpu"`` or None (a GPU when there is one). On GPUs the backend is NCCL
    and each process takes the GPU of its ``LOCAL_RANK``; on CPUs it is gloo.
    Returns the :class:`Context`; for one process (no ``WORLD_SIZE`` > 1) nothing is started.
    Raises RuntimeError when there are more processes than GPUs on a GPU run.
    """
    ctx = _from_environment()
    if not ctx.enabled:
        return ctx
    if dist.is_initialized():
        return context()
    use_cuda = (torch.device(device).type == "cuda") if device is not None else torch.cuda.is_available()
    if use_cuda:
        if ctx.local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"process {ctx.local_rank} has no GPU: {torch.cuda.device_count()} visible, "
                               "start fewer processes (--nproc_per_node) or train on the CPU")
        torch.cuda.set_device(ctx.local_rank)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend)
    return Context(ctx.rank, ctx.local_rank, ctx.world_size, backend)


def context() -> Context:
    """The current :class:`Context` (one process when no group was joined)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    ctx = _from_environment()
    return Context(dist.get_rank(), ctx.local_rank, dist.get_world_size(), dist.get_backend())


def barrier() -> None:
    """Wait for every process (nothing to wait for with one)."""
    if context().enabled:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``values`` over all processes (a new tensor; itself for one)."""
    if not context().enabled:
        return values
    total = values.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def any_rank(flag: bool, device=None) -> bool:
    """True when ``flag`` is true on at least one process (so that all stop together)."""
    if not context().enabled:
        return bool(flag)
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


def all_gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, …]`` on every process (picklable objects; ``[obj]`` for one)."""
    ctx = context()
    if not ctx.enabled:
        return [obj]
    gathered = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers of ``module`` (BatchNorm's running statistics, which
    each process updates on its own batches), so that all validate the very same model."""
    if context().enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
