"""The one check of what a reward returned: ``n`` finite numbers, or a clear error.

``None`` is allowed for a sample: it means "this reward does not apply here" (a math
checker shown a sample without a math answer, say). Such a sample's total is the weighted
sum of the rewards that did apply, and per-reward means skip it.

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


def validate_scores(name: str, output: Any, n: int) -> list[float | None]:
    """Turn a component's output into ``n`` finite floats (or None) or raise ``RewardError``."""
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
    scores: list[float | None] = []
    for i, value in enumerate(output):
        if value is None:
            scores.append(None)
            continue
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


def applicable_mean(scores: Sequence[float | None]) -> float | None:
    """The mean over the samples a reward applied to; None when it applied to none."""
    known = [s for s in scores if s is not None]
    return sum(known) / len(known) if known else None


def component_means(prefix: str, components: dict[str, Sequence[float | None]]) -> dict:
    """``{prefix/name: mean}`` per reward, leaving out a reward that applied to no sample."""
    means = {f"{prefix}/{name}": applicable_mean(v) for name, v in components.items()}
    return {k: float(v) for k, v in means.items() if v is not None}


def _short_repr(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
