"""FSDP: the language model's weights, gradients and optimiser state split over processes.

`accelerate launch` with an FSDP config (`distributed_type: FSDP`) puts ACCELERATE_USE_FSDP
and FSDP_* in the environment; under plain torchrun, RLSTUDIO_FSDP=1 asks for the same.
We shard with torch's FSDP2 (`fully_shard`): each decoder layer is one unit, the rest of
the model (embeddings, final norm, head) the root unit. The policy's small heads (value
head, an algorithm's own heads) stay whole on every rank and are averaged as with DDP.

Every forward through a sharded model is a collective, so all ranks must make the same
calls: equal shares of the batch, `generate()` kept in step (`synced_gpus`), evaluation
on every rank, and full state dicts gathered by all ranks before rank 0 writes them.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from core.parallel import distributed

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Options:
    reshard_after_forward: bool = True  # FULL_SHARD; False keeps gathered weights (ZeRO-2)
    offload_params: bool = False  # shards live in host memory between uses (CUDA only)
    layer_classes: tuple[str, ...] = ()  # empty: the model's own `_no_split_modules`

    def describe(self) -> str:
        parts = ["full shard" if self.reshard_after_forward else "weights kept after forward"]
        if self.offload_params:
            parts.append("parameters offloaded to host memory")
        if self.layer_classes:
            parts.append("units: " + ", ".join(self.layer_classes))
        return "; ".join(parts)


def requested() -> bool:
    """True when the launcher asked for FSDP and there is more than one process."""
    asked = (
        os.environ.get("ACCELERATE_USE_FSDP", "").lower() in _TRUE
        or os.environ.get("RLSTUDIO_FSDP", "").lower() in _TRUE
    )
    return asked and distributed.launched()


def options_from_env() -> Options:
    """accelerate's FSDP settings as it exports them (FSDP 1 and 2 spell resharding apart)."""
    reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD") or os.environ.get(
        "FSDP_SHARDING_STRATEGY", "true"
    )
    reshard = reshard.strip().lower()
    if reshard in ("no_shard", "3"):
        raise ValueError(
            "FSDP sharding strategy NO_SHARD is plain data parallel: launch without FSDP"
        )
    classes = os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "")
    return Options(
        reshard_after_forward=reshard not in ("false", "shard_grad_op", "2"),
        offload_params=os.environ.get("FSDP_OFFLOAD_PARAMS", "").lower() in _TRUE,
        layer_classes=tuple(c.strip() for c in classes.split(",") if c.strip()),
    )


def active(module: nn.Module | None) -> bool:
    """True when `module` (or a part of it) was sharded by `shard_lm`."""
    return module is not None and getattr(module, "_rlstudio_sharded", False)


def shard_lm(lm: nn.Module, opts: Options, device: torch.device) -> None:
    """Shard `lm` in place over the process group: its decoder layers, then the root."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    classes = set(opts.layer_classes) or set(_no_split_modules(lm))
    layers = [m for m in lm.modules() if type(m).__name__ in classes]
    if not layers:
        raise ValueError(
            f"FSDP: no layer of class {sorted(classes)} in {type(lm).__name__}; "
            "set fsdp_transformer_layer_cls_to_wrap in the accelerate config"
        )
    offload = opts.offload_params and device.type == "cuda"
    kwargs = {
        "reshard_after_forward": opts.reshard_after_forward,
        "offload_policy": CPUOffloadPolicy() if offload else OffloadPolicy(),
    }
    # The model returns logits sliced to the response (a view); we never change them in
    # place, which is what FSDP2 warns about on every forward.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    for layer in layers:
        fully_shard(layer, **kwargs)
    # The root is the transformers model itself, inside a PEFT wrapper if there is one:
    # PEFT's generate() calls that model directly, past any hook on the wrapper.
    root = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    fully_shard(root, **kwargs)
    # transformers' generate() then keeps the ranks in step (synced_gpus) by itself.
    for m in {lm, root}:
        m._is_fsdp_managed_module = True
        m._rlstudio_sharded = True


def _no_split_modules(lm: nn.Module) -> list[str]:
    for m in lm.modules():  # a PEFT wrapper holds the transformers model inside
        names = getattr(m, "_no_split_modules", None)
        if names:
            return list(names)
    return []


def is_sharded(p: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(p, DTensor)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """The 2-norm of every gradient, sharded or whole, scaled down to `max_norm` if above.

    Sharded gradients hold disjoint pieces on each rank, so their squares add up over
    ranks; whole ones (the heads) are the same everywhere and count once."""
    grads = [p.grad for p in params if p.grad is not None]
    shard_sq = sum((g.to_local().float().pow(2).sum() for g in grads if is_sharded(g)), start=0.0)
    whole_sq = sum((g.float().pow(2).sum() for g in grads if not is_sharded(g)), start=0.0)
    shard_sq = torch.as_tensor(shard_sq, dtype=torch.float64)
    total = float(distributed.all_sum(shard_sq)) + float(whole_sq)
    norm = math.sqrt(total) if math.isfinite(total) else math.nan
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            g.mul_(scale)
    return torch.tensor(norm)


def full_model_state(lm: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on rank 0 (empty elsewhere); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(
        lm, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    # A tied weight (lm_head = embeddings) is one parameter under two names: keep the first,
    # as save_pretrained does with the live model.
    seen: set[int] = set()
    for name, p in lm.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            state.pop(name, None)
        seen.add(id(p))
    return state


def _param_names(policy: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The optimiser's parameters by name, in the order its own state_dict numbers them."""
    names = {id(p): n for n, p in policy.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(policy: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimiser's whole state on rank 0, in `optimizer.state_dict()`'s own layout (so a
    checkpoint reads the same whichever way it was trained); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    by_name = get_optimizer_state_dict(
        policy, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if not by_name:  # not rank 0
        return {}
    index = {n: i for i, n in enumerate(_param_names(policy, optimizer))}
    groups = [dict(g, params=[index[n] for n in g["params"]]) for g in by_name["param_groups"]]
    state = {index[n]: s for n, s in by_name["state"].items()}
    return {"state": state, "param_groups": groups}


def load_optimizer_state(policy: nn.Module, optimizer: torch.optim.Optimizer, state: dict):
    """`full_optimizer_state`'s (or a one-process run's) state into a sharded optimiser."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _param_names(policy, optimizer)
    by_name = {
        "state": {names[i]: s for i, s in state["state"].items()},
        "param_groups": [
            dict(g, params=[names[i] for i in g["params"]]) for g in state["param_groups"]
        ],
    }
    set_optimizer_state_dict(
        policy, optimizer, by_name, options=StateDictOptions(full_state_dict=True)
    )


def sharded_params(params: Iterable[nn.Parameter]) -> tuple[list, list]:
    """(sharded, whole) parameters."""
    sharded, whole = [], []
    for p in params:
        (sharded if is_sharded(p) else whole).append(p)
    return sharded, whole
