"""Token-level Q-learning in the ILQL style, at home in one package: heads, losses, the
update, decoding with the heads, the replay buffer.

`from core.algorithms.ilql import ILQLHeads, ilql_decode_logits` is written into every
exported ILQL model's notes: keep those names here."""

from __future__ import annotations

from core.algorithms.ilql.algorithm import ILQL, transitions
from core.algorithms.ilql.heads import ILQLHeads, polyak_update
from core.algorithms.ilql.losses import (
    AWAC_WEIGHT_MAX,
    IlqlLossWeights,
    expectile_loss,
    ilql_decode_logits,
    ilql_losses,
    lambda_returns,
    terminal_rewards,
)

__all__ = [
    "AWAC_WEIGHT_MAX",
    "ILQL",
    "ILQLHeads",
    "IlqlLossWeights",
    "expectile_loss",
    "ilql_decode_logits",
    "ilql_losses",
    "lambda_returns",
    "polyak_update",
    "terminal_rewards",
    "transitions",
]
