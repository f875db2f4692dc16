"""Rewards: built-ins, user reward files, and their weighted combination.

The names below are imported on first use (PEP 562), so that the reward worker
process, which imports ``core.rewards.worker``, loads only what it needs and not
the built-ins' dependencies: it starts faster and smaller under its memory limit.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from core.rewards.errors import RewardConfigError, RewardError

if TYPE_CHECKING:
    from core.rewards.builtins import BUILTINS
    from core.rewards.composite import (
        CompositeReward,
        RewardComponent,
        RewardResult,
        build_reward,
    )
    from core.rewards.sandbox import SandboxedReward
    from core.rewards.user_code import load_reward_file

_LAZY = {
    "BUILTINS": "core.rewards.builtins",
    "CompositeReward": "core.rewards.composite",
    "RewardComponent": "core.rewards.composite",
    "RewardResult": "core.rewards.composite",
    "build_reward": "core.rewards.composite",
    "SandboxedReward": "core.rewards.sandbox",
    "load_reward_file": "core.rewards.user_code",
}

__all__ = [
    "BUILTINS",
    "CompositeReward",
    "RewardComponent",
    "RewardConfigError",
    "RewardError",
    "RewardResult",
    "SandboxedReward",
    "build_reward",
    "load_reward_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'core.rewards' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
