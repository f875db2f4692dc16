"""Prepacked weights for sampling on CPU.

Decoding multiplies a few rows by every weight matrix once per token, so it is bound by
reading the weights. torch's dense linear (MKL sgemm) reads them at about a third of this
machine's memory bandwidth at 8 rows; oneDNN's linear over weights reordered once into its
blocked layout reads them at about 2x the speed (bench/vs_trl.py, README). The weights move
after every update, so they are packed afresh for each rollout and dropped after it.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager

import torch
from torch import nn

from core.parallel import sharding


def available(device: torch.device) -> bool:
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


# Set (to anything) to treat this CPU as one whose oneDNN refuses bfloat16 weight packing
# (AVX2-only CPUs do): the tests force the fallback with it.
NO_BF16_PACKING = "RLSTUDIO_NO_BF16_PACKING"


@functools.cache
def _packs_bf16() -> bool:
    """Whether oneDNN packs and multiplies bfloat16 weights on this CPU. It needs AVX-512
    (BW, VL, DQ) or AVX-NE-CONVERT and raises a RuntimeError elsewhere (an AVX2-only AMD
    EPYC, say): a tiny try answers for every CPU and build alike."""
    try:
        weight = torch.ops.mkldnn._reorder_linear_weight(torch.ones(16, 16).bfloat16(), 1)
        torch.ops.mkldnn._linear_pointwise(
            torch.ones(1, 16).bfloat16(), weight, None, "none", [], ""
        )
    except RuntimeError:
        return False
    return True


def cpu_packs_bf16() -> bool:
    """Whether this CPU's oneDNN packs and multiplies bfloat16 weights (False where
    `NO_BF16_PACKING` is set)."""
    return not os.environ.get(NO_BF16_PACKING) and _packs_bf16()


def bf16_unpacked_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why a bfloat16 run samples on plain (unpacked) weights here, or None."""
    if dtype != torch.bfloat16 or not available(device):
        return None
    if not cpu_packs_bf16():
        return (
            "this CPU lacks the instructions oneDNN needs for packed bfloat16 weights "
            "(AVX-512 BW/VL/DQ or AVX-NE-CONVERT): sampling runs on plain bfloat16 weights, "
            'slower; model.dtype = "float32" may be faster here'
        )
    return None


def packing_pays(capability: str, onednn_isa: str | None) -> bool:
    """Whether packed float32 weights beat torch's dense linear on this CPU: measured on
    AVX-512 (2x), not on AVX2 kernels, where the packed path was 1.1-1.2x slower
    (`python bench/rollout_micro.py --configs default avx2`, README)."""
    isa = (onednn_isa or "ALL").upper()
    capped = isa not in ("ALL", "DEFAULT") and not isa.startswith(("AVX512", "AVX10", "AMX"))
    return capability.upper().startswith("AVX512") and not capped


def float32_unpacked_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why a float32 run samples on plain weights on this CPU (its kernels), or None."""
    if dtype != torch.float32 or not available(device):
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    if packing_pays(capability, os.environ.get("ONEDNN_MAX_CPU_ISA")):
        return None
    return (
        f"this CPU runs torch's {capability} kernels: sampling uses the plain float32 "
        "weights, as oneDNN's packed ones are faster only on AVX-512"
    )


def _packed_forward(weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype):
    linear = torch.ops.mkldnn._linear_pointwise

    def forward(x: torch.Tensor) -> torch.Tensor:
        return linear(x.to(dtype), weight, bias, "none", [], "")

    return forward


@contextmanager
def packed_linears(lm: nn.Module, rows: int, dtype: torch.dtype):
    """Within the block, every float32 nn.Linear of `lm` runs in `dtype` (the run's compute
    dtype: float32, or bfloat16 as autocast would; a bfloat16 sampling copy's bfloat16
    Linears too, with `dtype` bfloat16) on weights packed for oneDNN (`rows`: the
    batch, a hint for the layout). No grads flow; the weights must not change inside. Does
    nothing where it does not apply (not CPU, no oneDNN, sharded, float16, bfloat16 on a
    CPU that cannot pack it: `bf16_unpacked_reason`)."""
    device = next(lm.parameters()).device
    linears = [m for m in lm.modules() if type(m) is nn.Linear]
    usable = (
        dtype in (torch.float32, torch.bfloat16)
        and available(device)
        and bf16_unpacked_reason(device, dtype) is None
        and float32_unpacked_reason(device, dtype) is None
    )
    if not usable or sharding.active(lm) or not linears:
        yield
        return
    packed: dict[int, torch.Tensor] = {}  # tied weights (lm_head = embeddings) pack once
    patched = []
    try:
        for m in linears:
            if m.weight.dtype not in (torch.float32, dtype) or "forward" in m.__dict__:
                continue
            key = id(m.weight)
            if key not in packed:
                packed[key] = torch.ops.mkldnn._reorder_linear_weight(
                    m.weight.detach().to(dtype), rows
                )
            bias = None if m.bias is None else m.bias.detach().to(dtype)
            m.forward = _packed_forward(packed[key], bias, dtype)
            patched.append(m)
        yield
    finally:
        for m in patched:
            del m.forward
