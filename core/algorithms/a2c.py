"""A2C for language models: the PPO machinery with one pass and no clipping.

One on-policy pass means the importance ratio starts at 1, so the policy term is the
plain advantage-weighted log-likelihood gradient; the value head and GAE are PPO's.
"""

from __future__ import annotations

import dataclasses
import math

from core.algorithms.ppo import PPO


class A2C(PPO):
    needs_value_head = True

    def __init__(self, cfg, *args, **kwargs) -> None:
        cfg = dataclasses.replace(cfg, epochs=1, clip_range=math.inf, clip_range_value=math.inf)
        super().__init__(cfg, *args, **kwargs)
