"""The device and the precision a run computes in: a leaf that the tensor math imports
without pulling in model loading."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from contextlib import nullcontext

import torch


class ModelError(ValueError):
    """A model that cannot be found or loaded; the message says which and why."""


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("model.device = 'cuda' but no CUDA GPU is visible to torch")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ModelError("model.device = 'mps' but this machine has no Apple GPU for torch")
    return torch.device(name)


def resolve_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """Compute dtype. Weights stay float32 (stable Adam updates); this is the autocast dtype."""
    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32  # CPU bf16 matmuls are slow on most CPUs; MPS bf16 is patchy


def cpu_bf16_native() -> bool:
    """True on CPUs with bfloat16 matrix instructions (AVX512-BF16 or AMX), where bf16
    mixed precision trains markedly faster than float32; elsewhere CPU bf16 is emulated."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def cpu_bf16_hint(device: torch.device, dtype: torch.dtype) -> str | None:
    """A line for the run's log when float32 on this CPU leaves native bf16 unused."""
    if device.type != "cpu" or dtype != torch.float32 or not cpu_bf16_native():
        return None
    return (
        "this CPU multiplies bfloat16 natively (AVX512-BF16 / AMX): model.dtype = "
        '"bfloat16" (mixed precision; the weights stay float32) made GRPO steps about '
        "1.3x faster on such a CPU (bench/vs_trl.py --dtype bfloat16)"
    )


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision where it applies; a no-op for float32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile's inductor cannot build kernels here, or None. Checked before
    loading the model: otherwise the failure would surface at the first update."""
    if getattr(sys, "frozen", False):
        # Inductor compiles in worker processes started from sys.executable: in the
        # packaged app that is the studio itself.
        return "the packaged app cannot compile kernels (a pip install of rlstudio can)"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "it needs the triton package on a GPU (pip install triton)"
    if device.type == "cpu" and not any(
        shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c
    ):
        return "it needs a C++ compiler on a CPU (g++ or clang++ on the PATH, or $CXX)"
    return None
