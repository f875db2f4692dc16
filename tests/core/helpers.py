"""Small configs for fast, real runs on tiny-random."""

from __future__ import annotations

from pathlib import Path

import torch

from core.config import RunConfig, load_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]
TINY_RECIPE = ROOT / "assets" / "recipes" / "tiny_smoke.toml"


def tiny_config(overrides: dict | None = None) -> RunConfig:
    """The shipped tiny recipe (one prompt, letter-e reward) with dotted overrides."""
    cfg = load_config(TINY_RECIPE)
    return with_overrides(cfg, overrides) if overrides else cfg


NAN = float("nan")


def t(x) -> torch.Tensor:
    """A float32 tensor from a literal: the hand-computed values in the math tests."""
    return torch.tensor(x, dtype=torch.float32)


def close(a, b, atol=1e-6):
    a = torch.as_tensor(a, dtype=torch.float32)
    b = torch.as_tensor(b, dtype=torch.float32)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=0), (a, b)
