"""What the store hands back and how values are encoded on the way in and out.

Run statuses, the `RunNotFound` error, the frozen dataclasses the queries return, and the
helpers that keep NaN and ±inf intact (metrics) or turn them into JSON null (everything else).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np


class RunStatus(StrEnum):
    """Where a run stands. Stored as its string value."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


FINISHED = {RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INTERRUPTED}
LIVE = (RunStatus.RUNNING.value, RunStatus.PAUSED.value)


class RunNotFound(KeyError):
    """Asked for a run id the database does not hold."""

    def __init__(self, run_id: int, url: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id
        self.message = f"no run with id {run_id} in {url}"

    def __str__(self) -> str:
        return self.message


class StoreReadOnly(RuntimeError):
    """The database can be read but not written (file or folder permissions, a read-only
    mount, `mode=ro`)."""

    def __init__(self, url: str, reason: str) -> None:
        self.reason = reason
        self.message = (
            f"the store at {url} is read-only ({reason}): it can be listed, not written; "
            "check the permissions of the database file and its folder, or whether its drive "
            "is mounted read-only"
        )
        super().__init__(self.message)


class StoreUnavailable(RuntimeError):
    """The database cannot be reached (at the start, or still not at the end of a run)."""


# How every message about a full store begins (the studio's banner knows it by this).
STORE_FULL = "Store full"


class StoreFull(StoreUnavailable):
    """The database's disk is full: nothing can be written until space is freed."""

    def __init__(self, url: str, reason: str) -> None:
        self.reason = reason
        self.message = (
            f"{STORE_FULL}: {url} has no space left ({reason}); free some space on its drive"
        )
        super().__init__(self.message)


class RunBusy(RuntimeError):
    """The run is being trained by another live process (`claim_run` found it taken)."""

    def __init__(self, run_id: int, status: str, pid: int | None, hostname: str | None) -> None:
        where = f"pid {pid} on {hostname}" if pid is not None else f"on {hostname or 'a host'}"
        verb = "is paused in another process" if status == "paused" else "is running"
        if status == "pending":
            verb = "is starting"
        self.run_id, self.pid, self.hostname = run_id, pid, hostname
        self.message = f"run {run_id} {verb} ({where})"
        super().__init__(self.message)


@dataclass(frozen=True)
class Claim:
    """What a run was before this process claimed it; `unclaim_run` puts it back."""

    status: RunStatus
    error: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class RunInfo:
    """A run as the run list shows it."""

    id: int
    name: str
    status: RunStatus
    algorithm: str
    model: str
    seed: int
    total_steps: int
    last_step: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    last_reward: float | None
    app_version: str | None = None  # the RL Studio that made it; None before 0.2.0
    parent_run_id: int | None = None  # the run this one starts over (a fresh start)
    # seconds of training to its last step (the metrics' wall_time, which a resume carries
    # on from its checkpoint's): time stopped between segments is not counted
    training_seconds: float | None = None


@dataclass(frozen=True, eq=False)
class MetricSeries:
    """One metric's points, ordered by step; values keep NaN and ±inf."""

    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray


@dataclass(frozen=True)
class CheckpointInfo:
    """A saved state a run can resume from."""

    step: int
    path: str
    created_at: datetime


@dataclass(frozen=True)
class LogEntry:
    """One line of a run's log."""

    time: datetime
    level: str
    message: str


MetricRow = tuple[int, float, Mapping[str, float | None]]
LogRow = tuple[datetime, str, str]


def utc_now() -> datetime:
    return datetime.now(UTC)


def jsonable(value: Any) -> Any:
    """Plain JSON data with non-finite floats as null (json would write invalid NaN)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return jsonable(value.tolist())
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), allow_nan=False)


def dumps_optional(value: Any) -> str | None:
    return None if value is None else dumps(value)


def loads_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def encode_metric(value: Any) -> tuple[float | None, str | None]:
    """(value, special): non-finite numbers go to `special` so they survive SQLite."""
    if value is None:
        return None, None
    number = float(value)
    if math.isnan(number):
        return None, "nan"
    if math.isinf(number):
        return None, "inf" if number > 0 else "-inf"
    return number, None


def decode_metric(value: float | None, special: str | None) -> float:
    if special is not None:
        return float(special)
    return math.nan if value is None else float(value)
