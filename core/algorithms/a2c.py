"""A2C for language models: the PPO machinery with one on-policy step per batch.

One step on fresh samples means the importance ratio is 1, so the policy term is the plain
advantage-weighted log-likelihood gradient (no clipping); the value head and GAE are PPO's.
`algorithm.minibatches` only bounds the memory here: their gradients add up to the batch's
before the one step. The entropy bonus (`algorithm.entropy_coef`, classically 0.01) keeps
the policy from collapsing, as in Mnih et al. 2016.
"""

from __future__ import annotations

import dataclasses
import math

from core.algorithms.ppo import PPO


class A2C(PPO):
    needs_value_head = True
    one_step_per_batch = True

    def __init__(self, cfg, *args, **kwargs) -> None:
        cfg = dataclasses.replace(cfg, epochs=1, clip_range=math.inf, clip_range_value=math.inf)
        super().__init__(cfg, *args, **kwargs)
