"""Several processes, one run: the few collective operations the loop needs.

`rlstudio train` under `torchrun --nproc_per_node N` or `accelerate launch` finds RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in its environment; `session()` opens
the process group from them (gloo on CPU, nccl on CUDA). Every helper here is a no-op
in a single process, so a plain run computes exactly what it always did.

Each rank takes a disjoint slice of the step's prompts (whole GRPO/RLOO groups), scores
its own rollouts and averages its gradients with the others before the optimiser step,
so the weights stay identical everywhere; only rank 0 writes to the store and saves
checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

TIMEOUT_ENV = "RLSTUDIO_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0  # a rank that died or hangs ends the others' wait after this


def launched() -> bool:
    """True when a launcher (torchrun, accelerate) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def describe() -> str:
    """Says "1 process", or "2 processes (gloo)", as the run's log and the CLI show it."""
    n = world_size()
    return "1 process" if n == 1 else f"{n} processes ({dist.get_backend()})"


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Opens the process group when launched as several processes; closes it at the end."""
    if not launched() or active():
        yield
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and os.environ.get("RLSTUDIO_DIST_BACKEND") != "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)  # "cuda" is this process's own GPU from here on
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timeout)
    try:
        yield
    finally:
        dist.destroy_process_group()


def shard(items: Sequence[T]) -> list[T]:
    """This rank's contiguous slice of `items` (sizes differ by at most one)."""
    n, w, r = len(items), world_size(), rank()
    return list(items[r * n // w : (r + 1) * n // w])


def _device() -> torch.device:
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast(obj: T) -> T:
    """Rank 0's `obj` on every rank (any picklable value)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: T) -> list[T]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on at least one."""
    if not active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `x` over ranks (a new tensor; `x` itself in one process)."""
    if not active():
        return x
    t = x.detach().to(_device(), torch.float64).clone()
    dist.all_reduce(t)
    return t.to(x.device, x.dtype)


def all_cat(x: torch.Tensor) -> torch.Tensor:
    """Every rank's 1-d `x` concatenated in rank order (lengths may differ)."""
    if not active():
        return x
    parts = gather(x.detach().cpu())
    return torch.cat(parts).to(x.device, x.dtype)


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over ranks (what DDP does), in one all-reduce.

    A parameter without a gradient on one rank counts as zero there; one without a
    gradient on every rank keeps none (the optimiser skips it, as in one process)."""
    if not active() or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    present = torch.tensor([float(p.grad is not None) for p in params], device=grads[0].device)
    flat = torch.cat([*(g.reshape(-1).float() for g in grads), present]).to(_device())
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(g).to(g.device, g.dtype)
        offset += n
    for p, seen in zip(params, flat[offset:].tolist()):
        if seen == 0:
            p.grad = None


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (identical starting weights)."""
    if not active():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        buf = tensor.data.to(_device())
        dist.broadcast(buf, src=0)
        if buf is not tensor.data:
            tensor.data.copy_(buf)


# How each metric is combined over ranks: throughput adds up, a step lasts as long as
# its slowest rank, memory is the largest; everything else is the mean.
def reduce_metrics(values: dict[str, float]) -> dict[str, float]:
    """`values` combined over ranks (the same keys come back, in the same order)."""
    if not active():
        return values
    every = gather(values)
    out: dict[str, float] = {}
    for key in values:
        xs = [float(v[key]) for v in every if key in v and v[key] is not None]
        if not xs:
            out[key] = values[key]
        elif key.startswith("perf/"):
            out[key] = sum(xs)
        elif key.startswith(("time/", "memory/")):
            out[key] = max(xs)
        else:
            out[key] = sum(xs) / len(xs)
    return out


def mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of every element of `x` over all ranks (`x.mean()` in one process)."""
    if not active():
        return x.mean()
    both = all_sum(torch.stack([x.double().sum(), torch.tensor(float(x.numel()), device=x.device)]))
    return (both[0] / both[1].clamp_min(1.0)).to(x.dtype)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`x` [B, R] scaled to mean 0 and unit (unbiased) variance over the real tokens of
    every rank, 0 at padding: `core.algorithms.common.masked_whiten` over the whole batch."""
    m = mask.bool()
    xm = torch.where(m, x.float(), torch.zeros((), device=x.device))
    stats = all_sum(
        torch.stack([xm.double().sum(), (xm.double() ** 2).sum(), m.sum().double()])
    ).double()
    total, total_sq, n = stats.tolist()
    mu = total / max(n, 1.0)
    var = max(total_sq - n * mu * mu, 0.0) / max(n - 1.0, 1.0)
    out = (xm - mu) * torch.rsqrt(torch.tensor(var + eps, device=x.device))
    return torch.where(m, out, torch.zeros((), device=x.device))
