"""The one check of what a reward returned: ``n`` finite numbers, or a clear error.

``CompositeReward`` runs it on every component's output, and the sandbox worker
runs it before sending scores back, so only plain floats cross the process
boundary and a bad value is reported with the component's name and the sample.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from core.rewards.errors import RewardError


def _as_float(value: Any) -> float | None:
    """The value as a float if it is a real number (bools count as 0/1), else None."""
    if isinstance(value, (str, bytes)):
        return None
    if not isinstance(value, numbers.Real) and not hasattr(type(value), "__float__"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def validate_scores(name: str, output: Any, n: int) -> list[float]:
    """Turn a component's output into ``n`` finite floats or raise ``RewardError``."""
    is_array = hasattr(output, "__array__") and getattr(output, "ndim", None) == 1
    if isinstance(output, (str, bytes)) or not (isinstance(output, Sequence) or is_array):
        raise RewardError(
            f"reward '{name}' must return a list of numbers, got {type(output).__name__}",
            component=name,
        )
    if len(output) != n:
        raise RewardError(
            f"reward '{name}' returned {len(output)} scores for {n} completions",
            component=name,
        )
    scores: list[float] = []
    for i, value in enumerate(output):
        score = _as_float(value)
        if score is None:
            raise RewardError(
                f"reward '{name}' returned a non-number for sample {i}: {_short_repr(value)}",
                component=name,
                sample_index=i,
            )
        if not math.isfinite(score):
            raise RewardError(
                f"reward '{name}' returned {value!r} for sample {i}; scores must be finite",
                component=name,
                sample_index=i,
            )
        scores.append(score)
    return scores


def _short_repr(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
