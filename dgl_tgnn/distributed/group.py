"""The processes of a data-parallel run: joining them (``torchrun``'s environment), each one's share
of a window of events, and the small collectives the training loop agrees through."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# A collective that cannot complete (a process died or hangs) fails after this many seconds, unless
# DGL_TGNN_DIST_TIMEOUT_S says otherwise. (A process that dies closes its sockets: the others
# usually fail at once.)
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Parallel:
    """This process's place in a data-parallel run of ``world`` processes.

    Attributes:
        rank: this process's rank, ``0 <= rank < world``; rank 0 alone writes the run directory.
        world: ``G``, the number of processes.
        device: where this process trains (``cuda:LOCAL_RANK`` on GPUs, else the CPU); the
            collectives run there (NCCL) or on the CPU (gloo).
    """

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """True on rank 0, the process that writes files and prints."""
        return self.rank == 0

    def bounds(self, size: int, rank: int | None = None) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of a window of ``size`` events that ``rank`` (default: this one) takes:
        contiguous shares, ``size * r // G`` to ``size * (r + 1) // G`` (a full window of ``G x B``
        events: ``B`` each)."""
        r = self.rank if rank is None else rank
        return size * r // self.world, size * (r + 1) // self.world

    def agree(self, flags: list[bool]) -> list[bool]:
        """Each flag True when it is True on any process (a collective: every process calls it)."""
        x = torch.tensor([int(f) for f in flags], dtype=torch.int64, device=self.device)
        dist.all_reduce(x, op=dist.ReduceOp.MAX)
        return [bool(v) for v in x.tolist()]

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """The sum of ``x`` over the processes (a new tensor, on ``x``'s device)."""
        y = x.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(y)
        return y.to(x.device, x.dtype)


def launched() -> bool:
    """True in a process that ``torchrun`` (or ``dgl-tgnn train --nproc``) started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> Parallel:
    """Joins the process group that ``torchrun``'s environment describes (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): NCCL with ``cuda:LOCAL_RANK`` when ``device``
    is a GPU, else gloo on the CPU; collectives time out after ``TIMEOUT_S``."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"process {rank} of {world} needs cuda:{local}, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); use fewer processes (--nproc)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    timeout = float(os.environ.get("DGL_TGNN_DIST_TIMEOUT_S", TIMEOUT_S))
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=timeout),
        )
    return Parallel(rank, world, device)


def leave() -> None:
    """Leaves the process group (when joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()
