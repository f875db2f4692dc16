"""Combine several rewards into one weighted score and check what each returns.

Every component's output is validated here, so a broken reward fails with a
message naming it and the sample, instead of a NaN silently poisoning training.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.rewards.builtins import BUILTINS
from core.rewards.errors import RewardConfigError, RewardError
from core.rewards.user_code import load_reward_file

PYTHON_KIND = "python"


@dataclass(frozen=True)
class RewardComponent:
    """One named, weighted reward inside a composite."""

    name: str
    weight: float
    fn: Callable[..., Any]


@dataclass(frozen=True)
class RewardResult:
    """Scores for one batch: the weighted total and each component's raw scores."""

    total: list[float]
    components: dict[str, list[float]]


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


def _validate(name: str, output: Any, n: int) -> list[float]:
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
                f"reward '{name}' returned a non-number for sample {i}: {value!r}",
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


class CompositeReward:
    """A weighted sum of reward components: ``total = sum(weight * score)``."""

    def __init__(self, components: Iterable[RewardComponent]) -> None:
        self.components = list(components)
        if not self.components:
            raise RewardConfigError("no rewards configured; add at least one reward")
        seen: set[str] = set()
        for c in self.components:
            if c.name in seen:
                raise RewardConfigError(
                    f"duplicate reward name '{c.name}'; give each reward a distinct name"
                )
            seen.add(c.name)
            _check_weight(c.name, c.weight)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> RewardResult:
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"got {len(prompts)} prompts for {n} completions")
        for key, values in columns.items():
            if len(values) != n:
                raise ValueError(f"column '{key}' has {len(values)} values for {n} completions")
        total = [0.0] * n
        per_component: dict[str, list[float]] = {}
        for c in self.components:
            scores = _validate(c.name, _run(c, prompts, completions, columns), n)
            per_component[c.name] = scores
            total = [t + c.weight * s for t, s in zip(total, scores)]
        return RewardResult(total=total, components=per_component)


def _run(
    c: RewardComponent, prompts: list[str], completions: list[str], columns: dict[str, Any]
) -> Any:
    """Call one component, labelling any failure with the component's name."""
    try:
        return c.fn(list(prompts), list(completions), **columns)
    except RewardError as exc:
        raise RewardError(
            f"reward '{c.name}': {exc}",
            component=c.name,
            sample_index=exc.sample_index,
            lineno=exc.lineno,
        ) from exc
    except Exception as exc:
        raise RewardError(
            f"reward '{c.name}': {type(exc).__name__}: {exc}", component=c.name
        ) from exc


def _check_weight(name: str, weight: Any) -> float:
    if (
        isinstance(weight, bool)
        or not isinstance(weight, numbers.Real)
        or not math.isfinite(float(weight))
    ):
        raise RewardConfigError(
            f"reward '{name}': parameter 'weight' must be a finite number, got {weight!r}"
        )
    return float(weight)


def _build_python(params: Mapping[str, Any], base_dir: Path | None) -> tuple[Callable, str]:
    unknown = [k for k in params if k != "path"]
    if unknown:
        raise RewardConfigError(
            f"python: unknown parameter '{unknown[0]}' (allowed parameters: path)"
        )
    raw = params.get("path")
    if not isinstance(raw, (str, os.PathLike)) or not str(raw):
        raise RewardConfigError(
            f"python: parameter 'path' must be the path of a .py file, got {raw!r}"
        )
    path = Path(raw).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return load_reward_file(path), path.stem


def _build_builtin(
    kind: str, name: str, params: dict[str, Any], tokenizer: Any
) -> Callable[..., Any]:
    """Call the built-in factory; errors name the component when it was renamed."""
    try:
        if "tokenizer" in params:
            raise RewardConfigError(
                f"{kind}: unknown parameter 'tokenizer' (the model's tokenizer is used)"
            )
        return BUILTINS[kind](tokenizer=tokenizer, **params)
    except RewardConfigError as exc:
        if name == kind:
            raise
        raise RewardConfigError(f"reward '{name}': {exc}") from exc


def build_reward(
    components_cfg: Iterable[Any],
    tokenizer: Any = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> CompositeReward:
    """Build a ``CompositeReward`` from config objects with kind, name, weight and params.

    ``kind`` is a built-in name or "python"; an empty ``name`` defaults to the
    kind (or the file stem for python). Relative python paths resolve against
    ``base_dir`` (usually the recipe's folder), else the working directory.
    """
    components: list[RewardComponent] = []
    allowed = ", ".join([*sorted(BUILTINS), PYTHON_KIND])
    for cfg in components_cfg:
        kind = cfg.kind
        if cfg.name is not None and not isinstance(cfg.name, str):
            raise RewardConfigError(f"{kind}: 'name' must be a string, got {cfg.name!r}")
        if cfg.params is not None and not isinstance(cfg.params, Mapping):
            raise RewardConfigError(f"{kind}: 'params' must be a table, got {cfg.params!r}")
        params = dict(cfg.params or {})
        if kind == PYTHON_KIND:
            fn, default_name = _build_python(params, Path(base_dir) if base_dir else None)
            name = cfg.name or default_name
        elif kind in BUILTINS:
            name = cfg.name or kind
            fn = _build_builtin(kind, name, params, tokenizer)
        else:
            raise RewardConfigError(f"unknown reward kind {kind!r} (allowed kinds: {allowed})")
        components.append(RewardComponent(name, _check_weight(name, cfg.weight), fn))
    return CompositeReward(components)
