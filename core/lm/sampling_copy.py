"""A low-precision copy of the policy's LM to sample rollouts from
(`generation.sampling_dtype = "bfloat16"`): decoding reads every weight once per token, so
bfloat16 weights halve the bytes that bound it, while the update keeps the policy in its
own precision. The copy is made once and refreshed in place after every update."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from core.lm.packed_linear import available, cpu_packs_bf16

SAMPLING_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def sampling_copy_unavailable(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why rollouts cannot be sampled from a `dtype` copy on `device` (then they come from
    the policy itself, and the run's log says why), or None."""
    if dtype == torch.float32:
        return None
    fallback = 'rollouts are sampled from the policy itself (as with "float32")'
    if device.type == "cpu" and available(device) and not cpu_packs_bf16():
        return (
            'generation.sampling_dtype = "bfloat16": this CPU lacks the instructions oneDNN '
            f"needs for bfloat16 matrix products (AVX-512 BW/VL/DQ or AVX-NE-CONVERT): {fallback}"
        )
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return f'generation.sampling_dtype = "bfloat16": this GPU has no bfloat16: {fallback}'
    if device.type == "mps":
        return f'generation.sampling_dtype = "bfloat16": MPS bfloat16 is patchy: {fallback}'
    return None


def _lora_layer_type() -> type | None:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return None
    return LoraLayer


def _merged_weight(layer) -> Callable[[], torch.Tensor]:
    """The LoRA layer's weight as merging would leave it: base + every active adapter's
    delta (computed afresh; the policy's own weights are never touched)."""

    def weight() -> torch.Tensor:
        w = layer.base_layer.weight
        for name in layer.active_adapters:
            if name in layer.lora_A:
                w = w + layer.get_delta_weight(name)
        return w

    return weight


class SamplingCopy:
    """The policy's LM in `dtype` (its parameters; buffers such as rotary frequencies keep
    their precision), eval mode, no grads. With LoRA the copy holds the merged weights, so
    sampling runs plain Linears; `refresh` recomputes them from base + adapter."""

    def __init__(self, policy_lm: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        with torch.no_grad():
            lm = copy.deepcopy(policy_lm)
            if hasattr(lm, "peft_config"):  # a PeftModel: fold the adapter in, drop it
                lm = lm.merge_and_unload()
            for p in lm.parameters():  # tied weights are one Parameter: cast once
                p.data = p.data.to(dtype)
        self.lm = lm.eval().requires_grad_(False)
        self.dtype = dtype
        self._sources = self._pair_up(policy_lm)
        self.refresh()  # the merged weights, exactly as refresh computes them

    def _pair_up(self, policy_lm: nn.Module) -> list[tuple[torch.Tensor, Callable]]:
        """(the copy's parameter, what gives its value from the policy), for each."""
        lora = _lora_layer_type()
        base = policy_lm.get_base_model() if hasattr(policy_lm, "peft_config") else policy_lm
        pairs = []
        for name, target in self.lm.named_parameters():
            owner, _, attr = name.rpartition(".")
            module = base.get_submodule(owner)
            if lora is not None and isinstance(module, lora):
                source = _merged_weight(module) if attr == "weight" else None
                module = module.base_layer
            else:
                source = None
            if source is None:
                source = (lambda m, a: lambda: getattr(m, a))(module, attr)
            pairs.append((target, source))
        return pairs

    @torch.no_grad()
    def refresh(self) -> float:
        """Copy the policy's current weights in (cast in place: nothing is allocated for
        the copy); returns the seconds it took."""
        started = time.perf_counter()
        for target, source in self._sources:
            target.copy_(source())
        return time.perf_counter() - started
