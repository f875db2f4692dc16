"""Rewards: built-ins, user reward files, and their weighted combination.

The names below are imported on first use (PEP 562), so that the reward worker
process, which imports ``core.rewards.user_code.worker``, loads only what it needs and not
the built-ins' dependencies: it starts faster and smaller under its memory limit.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from core.rewards.errors import RewardConfigError, RewardError, RewardSignatureError

if TYPE_CHECKING:
    from core.rewards.builtin.builtins import BUILTINS
    from core.rewards.composite import (
        CompositeReward,
        RewardComponent,
        RewardResult,
        build_reward,
    )
    from core.rewards.model_scored.scorer import unload_models
    from core.rewards.user_code.loader import load_reward_file
    from core.rewards.user_code.sandbox import SandboxedReward

_LAZY = {
    "BUILTINS": "core.rewards.builtin.builtins",
    "CompositeReward": "core.rewards.composite",
    "RewardComponent": "core.rewards.composite",
    "RewardResult": "core.rewards.composite",
    "build_reward": "core.rewards.composite",
    "SandboxedReward": "core.rewards.user_code.sandbox",
    "load_reward_file": "core.rewards.user_code.loader",
    "unload_models": "core.rewards.model_scored.scorer",
}

__all__ = [
    "BUILTINS",
    "CompositeReward",
    "RewardComponent",
    "RewardConfigError",
    "RewardError",
    "RewardResult",
    "RewardSignatureError",
    "SandboxedReward",
    "build_reward",
    "load_reward_file",
    "unload_models",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'core.rewards' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
