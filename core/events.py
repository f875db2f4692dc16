"""What the training loop yields. Plain frozen data only: these cross thread and
process boundaries (the studio's worker, the CLI, the store writer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Status:
    """A change of state; `message` says why (loading, paused by the user, an error...)."""

    state: str  # loading | running | paused | completed | stopped | failed
    message: str = ""
    step: int = 0
    total_steps: int = 0


@dataclass(frozen=True)
class Metrics:
    step: int
    wall_time: float  # seconds since the run (or its resumption) started
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    prompt: str
    completion: str
    reward: float
    components: dict[str, float]
    tokens: list[str]
    logprobs: list[float]
    kl: list[float]
    advantages: list[float]


@dataclass(frozen=True)
class Samples:
    step: int
    rows: tuple[Sample, ...]


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: str


@dataclass(frozen=True)
class Log:
    level: str  # "info", "error", or "reward" for what reward code printed
    message: str


@dataclass(frozen=True)
class RewardFailure:
    """Reward code failed on the rollout of `step`; the run pauses until it is fixed.

    `component`, `sample_index` and `lineno` (of the user's file) are None where not
    known; `prompt` and `completion` are those of the failing sample, when there is one.
    """

    step: int
    message: str
    component: str | None = None
    sample_index: int | None = None
    lineno: int | None = None
    prompt: str | None = None
    completion: str | None = None


Event = Status | Metrics | Samples | Checkpoint | Log | RewardFailure


def as_record(sample: Sample, step: int, idx: int) -> dict[str, Any]:
    """A sample as the store's row dict."""
    return {
        "step": step,
        "idx": idx,
        "prompt": sample.prompt,
        "completion": sample.completion,
        "reward": sample.reward,
        "components": sample.components,
        "tokens": sample.tokens,
        "logprobs": sample.logprobs,
        "kl": sample.kl,
        "advantages": sample.advantages,
    }
