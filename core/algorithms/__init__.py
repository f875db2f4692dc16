"""The RL algorithms: pure tensor math per module plus one `update` each."""

from __future__ import annotations

from core.algorithms.a2c import A2C
from core.algorithms.base import HEADS_STATE_KEY, Algorithm, UpdateResult
from core.algorithms.grpo import GRPO
from core.algorithms.ilql import ILQL
from core.algorithms.ppo import PPO
from core.algorithms.reinforce import Reinforce
from core.algorithms.rloo import RLOO

ALGORITHMS: dict[str, type[Algorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "reinforce": Reinforce,
    "rloo": RLOO,
    "grpo": GRPO,
    "ilql": ILQL,
}


def make_algorithm(cfg, models, optimizer, scheduler) -> Algorithm:
    """The configured algorithm bound to a policy and its optimiser."""
    cls = ALGORITHMS[cfg.algorithm.name]
    return cls(
        cfg.algorithm,
        models.policy,
        optimizer,
        scheduler,
        max_grad_norm=cfg.training.max_grad_norm,
        temperature=cfg.generation.temperature,
        device=models.device,
        dtype=models.dtype,
        **cls.options(cfg, models),
    )


__all__ = ["ALGORITHMS", "HEADS_STATE_KEY", "Algorithm", "UpdateResult", "make_algorithm"]
