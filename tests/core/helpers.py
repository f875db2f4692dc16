"""Small configs for fast, real runs on tiny-random."""

from __future__ import annotations

from pathlib import Path

from core.config import RunConfig, load_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]
TINY_RECIPE = ROOT / "assets" / "recipes" / "tiny_smoke.toml"


def tiny_config(overrides: dict | None = None) -> RunConfig:
    """The shipped tiny recipe (one prompt, letter-e reward) with dotted overrides."""
    cfg = load_config(TINY_RECIPE)
    return with_overrides(cfg, overrides) if overrides else cfg
