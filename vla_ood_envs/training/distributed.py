"""Data parallelism with torch.distributed under torchrun: each rank owns its envs and a replica of the policy;
gradients are all-reduced before every optimizer step, so the replicas stay identical.

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for a world of one. Under torchrun
the backend is NCCL when CUDA is present and gloo otherwise; the rendezvous address defaults to 127.0.0.1 and gloo
to the loopback interface, so a local run never listens on the machine's network interface.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the
    environment), or return a world of one when not launched by torchrun. Idempotent."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        if backend == "gloo" and os.environ["MASTER_ADDR"] in ("127.0.0.1", "localhost"):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, backend=backend)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device(info: DistInfo, like: torch.Tensor) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if info.backend == "nccl" else torch.device("cpu")


def all_reduce(x: torch.Tensor, info: DistInfo, op: str = "sum") -> torch.Tensor:
    """Sum (op="sum"), mean ("mean") or max ("max") of x over ranks; a copy of x for a world of one."""
    if not info.enabled:
        return x.clone()
    y = x.detach().to(_comm_device(info, x)).clone()
    dist.all_reduce(y, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    if op == "mean":
        y = y / info.world_size
    return y.to(x.device)


def all_reduce_grads(params: list[torch.nn.Parameter], info: DistInfo, op: str = "mean") -> None:
    """Average (or sum) the gradients of `params` over ranks in one flat bucket. A parameter without a gradient on
    this rank contributes zeros, so every rank sends the same layout."""
    if not info.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads]).to(_comm_device(info, grads[0]))
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    if op == "mean":
        flat /= info.world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).to(p.device, p.dtype)
        offset += n


def broadcast_parameters(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (replicas start identical)."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        y = t.detach().to(_comm_device(info, t)).clone()
        dist.broadcast(y, src=0)
        with torch.no_grad():
            t.copy_(y.to(t.device))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
