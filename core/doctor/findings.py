"""What a rule says when it fires (`Verdict`), the run facts rules read (`RunFacts`), and the
recent metrics they read them from (`History`)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.config import RunConfig

# Kinds of reward that score the length of a completion: a reward that follows length is
# what they ask for, not a hack.
LENGTH_REWARDS = ("length", "eos_penalty")


@dataclass(frozen=True)
class Verdict:
    """A rule's finding at one step, before the doctor gives it a start step."""

    severity: str
    evidence: dict[str, float]
    explanation: str
    suggestion: str


@dataclass(frozen=True)
class RunFacts:
    """The settings the rules weigh figures against."""

    algorithm: str = "ppo"
    kl_target: float = 6.0
    adaptive_kl: bool = True
    kl_horizon: int = 10000
    max_new_tokens: int = 48
    reward_kinds: tuple[str, ...] = ()

    @classmethod
    def of(cls, cfg: RunConfig) -> RunFacts:
        a = cfg.algorithm
        return cls(
            algorithm=a.name,
            kl_target=a.kl_target,
            adaptive_kl=a.adaptive_kl and a.name != "ilql",
            kl_horizon=a.kl_horizon,
            max_new_tokens=cfg.generation.max_new_tokens,
            reward_kinds=tuple(c.kind for c in cfg.reward.components),
        )


@dataclass
class History:
    """The last `size` steps' metrics, and each metric's first finite value (its start)."""

    size: int = 64
    steps: deque[int] = field(default_factory=deque)
    rows: deque[Mapping[str, float]] = field(default_factory=deque)
    starts: dict[str, float] = field(default_factory=dict)
    maxima: dict[str, float] = field(default_factory=dict)  # over the whole run

    def add(self, step: int, values: Mapping[str, float]) -> None:
        self.steps.append(step)
        self.rows.append(values)
        while len(self.rows) > self.size:
            self.steps.popleft()
            self.rows.popleft()
        for key, value in values.items():
            if not math.isfinite(value):
                continue
            self.starts.setdefault(key, value)
            self.maxima[key] = max(value, self.maxima.get(key, value))

    @property
    def step(self) -> int:
        return self.steps[-1] if self.steps else 0

    def last(self, key: str, n: int) -> list[float]:
        """The key's values over the last `n` steps that have it, oldest first (NaN kept)."""
        out: list[float] = []
        for row in reversed(self.rows):
            if key in row:
                out.append(float(row[key]))
                if len(out) == n:
                    break
        return out[::-1]

    def now(self, key: str) -> float | None:
        row = self.rows[-1] if self.rows else {}
        return float(row[key]) if key in row else None

    def start(self, key: str) -> float | None:
        """The key's first finite value: where the run began."""
        return self.starts.get(key)

    def previous(self, key: str) -> float | None:
        """The key's value at the step before the last, None when that step lacks it."""
        row = self.rows[-2] if len(self.rows) > 1 else {}
        return float(row[key]) if key in row else None

    def highest(self, key: str) -> float | None:
        """The key's largest finite value since the run (or its doctor) began."""
        return self.maxima.get(key)


def one_line(finding) -> str:
    """A finding as the CLI prints it when it appears: severity, where, what, what to try."""
    return (
        f"doctor: {finding.severity} at step {finding.step}, {finding.kind}: "
        f"{finding.explanation} Try: {finding.suggestion}"
    )
