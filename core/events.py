"""What the training loop yields. Plain frozen data only: these cross thread and
process boundaries (the studio's worker, the CLI, the store writer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunState(StrEnum):
    """The states a run passes through, as `Status` events carry them. The store's
    `RunStatus` holds the same values (plus `pending` and `interrupted`, which only the
    store knows). A StrEnum: equal to its plain string, so stored and sent values match."""

    LOADING = "loading"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True)
class Status:
    """A change of state; `message` says why (loading, paused by the user, an error...)."""

    state: RunState
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
    """One completion of a step (`idx`: its place among that step's samples), as the loop
    sends it, the store keeps it and the samples table shows it. A stored sample may lack
    its per-token lists (None), and its numbers may be None where NaN was recorded."""

    step: int
    prompt: str
    completion: str
    reward: float | None
    components: dict[str, float | None]
    tokens: list[str] | None = None
    logprobs: list[float | None] | None = None
    kl: list[float | None] | None = None
    advantages: list[float | None] | None = None
    idx: int = 0


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


SEVERITIES = ("info", "warning", "critical")  # a finding's, mildest first


@dataclass(frozen=True)
class Finding:
    """What the run doctor (core/doctor) found wrong: one problem, from the step it began.

    A problem that goes on is one finding: the doctor sends it again, with the same `kind`
    and `step`, only when it grows more severe; `last_step` is the step it was last seen at
    and `evidence` the figures that showed it then (metric name or figure -> value)."""

    kind: str
    severity: str  # one of SEVERITIES
    step: int
    last_step: int
    evidence: dict[str, float]
    explanation: str
    suggestion: str

    @property
    def rank(self) -> int:
        """0 info, 1 warning, 2 critical: for sorting and the worst of several."""
        return SEVERITIES.index(self.severity)


@dataclass(frozen=True)
class Evaluating:
    """Held-out evaluation has begun (the `eval/` Metrics at `step` end it): a window shows
    it as busy rather than stuck."""

    step: int
    prompts: int


@dataclass(frozen=True)
class SettingsChanged:
    """Settings changed while the run went on (`Control.request_settings`: the studio's
    Resume after edits while paused): they hold from step `step + 1`. `changes` are
    (dotted key, old value, new value); `config` is the whole recipe now (`to_dict` data
    with its `base_dir`), what the store keeps as the run's settings."""

    step: int
    changes: tuple[tuple[str, Any, Any], ...]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return int(self.config.get("training", {}).get("steps", 0))

    @property
    def described(self) -> str:
        """'training.steps 40 -> 25, training.learning_rate 0.0003 -> 0.001'."""
        return describe_changes(self.changes)


def describe_changes(changes) -> str:
    """(key, old, new) triples as a resume or a mid-run change logs them."""
    return ", ".join(f"{key} {_shown(old)} -> {_shown(new)}" for key, old, new in changes)


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


Event = (
    Status
    | Metrics
    | Samples
    | Checkpoint
    | Log
    | RewardFailure
    | Finding
    | Evaluating
    | SettingsChanged
)
