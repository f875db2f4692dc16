"""Rewards: built-ins, user reward files, and their weighted combination."""

from core.rewards.builtins import BUILTINS
from core.rewards.composite import (
    CompositeReward,
    RewardComponent,
    RewardResult,
    build_reward,
)
from core.rewards.errors import RewardConfigError, RewardError
from core.rewards.user_code import load_reward_file

__all__ = [
    "BUILTINS",
    "CompositeReward",
    "RewardComponent",
    "RewardConfigError",
    "RewardError",
    "RewardResult",
    "build_reward",
    "load_reward_file",
]
