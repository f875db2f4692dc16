"""How a built-in reward describes and checks its parameters.

A ``BuiltinSpec`` is both the description a form is generated from (a summary,
the score's range, each parameter's name, type, default and help) and the
factory itself: calling it checks the recipe's parameters against that
description, fills in defaults, and builds the batched reward. The description
and the checks therefore cannot drift apart.

Also here: reading a per-sample column (``reference``, ``finished``...) with an
error that names the column and the sample when it is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.rewards.errors import RewardConfigError, RewardError

BatchedReward = Callable[..., list[float]]
Factory = Callable[..., BatchedReward]

PARAM_TYPES = ("int", "float", "bool", "str", "str_list")


@dataclass(frozen=True)
class Param:
    """One parameter of a built-in reward, as a form or a recipe sees it.

    ``type`` is one of ``PARAM_TYPES``. A parameter is either ``required`` (no
    default) or optional with ``default`` (None meaning "not set"). The ``example``
    values of a built-in together build a working reward, for a form to pre-fill
    (``BuiltinSpec.example_params``). ``choices`` limits a "str";
    ``min``/``max`` bound an "int" or a "float" (inclusive).
    """

    name: str
    type: str
    help: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    example: Any = None

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: unknown type {self.type!r}")

    def expected(self) -> str:
        """What a valid value looks like, in words, for error messages and tooltips."""
        if self.type == "bool":
            return "true or false"
        if self.type == "str_list":
            return (
                "a non-empty list of non-empty strings"
                if self.required
                else ("a list of non-empty strings")
            )
        if self.type == "str":
            if self.choices:
                return f"one of {', '.join(self.choices)}"
            return "a non-empty string"
        noun = "integer" if self.type == "int" else "number"
        lo, hi = self.min, self.max
        if hi is None and lo == 1 and self.type == "int":
            return "a positive integer"
        if hi is None and lo == 0:
            return f"a non-negative {noun}"
        if lo is not None and hi is not None:
            return f"{'an' if noun == 'integer' else 'a'} {noun} from {lo:g} to {hi:g}"
        if lo is not None:
            return f"{'an' if noun == 'integer' else 'a'} {noun} >= {lo:g}"
        return f"{'an' if noun == 'integer' else 'a'} {noun}"

    def check(self, component: str, value: Any) -> Any:
        """The value, normalised (ints to float for "float", lists to tuples), or raise."""
        if self._valid(value):
            if self.type == "float":
                return float(value)
            if self.type == "str_list":
                return tuple(value)
            return value
        raise RewardConfigError(
            f"{component}: parameter '{self.name}' must be {self.expected()}, got {value!r}"
        )

    def _valid(self, value: Any) -> bool:
        if self.type == "bool":
            return isinstance(value, bool)
        if self.type == "str_list":
            return (
                isinstance(value, (list, tuple))
                and (bool(value) or not self.required)
                and all(isinstance(v, str) and v.strip() for v in value)
            )
        if self.type == "str":
            if not isinstance(value, str):
                return False
            return value in self.choices if self.choices else bool(value.strip())
        if isinstance(value, bool):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        if self.type == "float" and not (
            isinstance(value, (int, float)) and math.isfinite(float(value))
        ):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class BuiltinSpec:
    """A built-in reward: what it does, its parameters, and how to build it.

    ``score_range`` is (lowest, highest) with None where the score is unbounded.
    ``build(tokenizer=..., **params)`` receives every declared parameter, checked
    and with defaults filled in; it raises ``RewardConfigError`` for checks that
    involve several parameters. Calling the spec runs the checks and ``build``,
    so ``spec(tokenizer=tok, **recipe_params)`` is the reward factory.
    """

    kind: str
    summary: str
    score_range: tuple[float | None, float | None]
    params: tuple[Param, ...]
    build: Callable[..., BatchedReward]
    help: str = ""

    def __call__(self, *, tokenizer: Any = None, **params: Any) -> BatchedReward:
        return self.build(tokenizer=tokenizer, **self.check_params(params))

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def example_params(self) -> dict[str, Any]:
        """Parameters that build a working reward: what a form pre-fills for a new one."""
        return {p.name: p.example for p in self.params if p.example is not None}

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared parameter, checked, with defaults for the ones not given."""
        check_names(self.kind, params, tuple(p.name for p in self.params))
        out: dict[str, Any] = {}
        for p in self.params:
            value = params.get(p.name)
            if value is None:
                if p.required:
                    raise RewardConfigError(
                        f"{self.kind}: parameter '{p.name}' is required ({p.expected()})"
                    )
                out[p.name] = p.default
            else:
                out[p.name] = p.check(self.kind, value)
        return out


def check_names(component: str, params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Reject parameters the component does not know, listing the ones it does."""
    for key in params:
        if key not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            raise RewardConfigError(
                f"{component}: unknown parameter '{key}' (allowed parameters: {known})"
            )


def column(columns: Mapping[str, Any], name: str, n: int, why: str = "") -> Sequence[Any]:
    """The per-sample column ``name``, or a ``RewardError`` saying which columns exist."""
    if name not in columns:
        present = ", ".join(sorted(columns)) or "none"
        raise RewardError(
            f"needs the column '{name}'{why}, but the batch has none (columns here: {present})"
        )
    values = columns[name]
    if len(values) != n:
        raise RewardError(f"column '{name}' has {len(values)} values for {n} completions")
    return values


def reference_texts(values: Sequence[Any], name: str) -> list[list[str]]:
    """Each sample's reference texts: a string is one reference, a list of strings several.

    A missing, blank or non-text reference raises ``RewardError`` naming the sample.
    """
    out: list[list[str]] = []
    for i, value in enumerate(values):
        refs = [value] if isinstance(value, str) else value
        if (
            not isinstance(refs, (list, tuple))
            or not refs
            or not all(isinstance(r, str) and r.strip() for r in refs)
        ):
            raise RewardError(
                f"sample {i} has no usable reference in column '{name}' "
                f"(want text or a list of texts, got {value!r})",
                sample_index=i,
            )
        out.append(list(refs))
    return out


REFERENCE_COLUMN_PARAM = Param(
    "reference_column",
    "str",
    "Prompt-set column holding each prompt's reference text (text, or a list of texts)",
    default="reference",
)
