"""What every tracker is handed and must do: one small interface, so the sink that feeds
them never asks which one it talks to."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.events import Sample


@dataclass(frozen=True)
class TrackedRun:
    """The run as a tracker sees it: `folder` is the run's own folder (beside its
    checkpoints), `shared` the folder beside it that several runs share (MLflow's store)."""

    run_id: int
    name: str
    config: Mapping[str, Any]
    folder: Path
    shared: Path


class Tracker(Protocol):
    name: str
    where: str  # said once in the run's log: where to look at what it records

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None: ...

    def log_samples(self, step: int, rows: Sequence[Sample]) -> None: ...

    def close(self) -> None: ...


def flat(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """`{"model": {"name": x}}` -> ("model.name", x): the dotted names `--set` takes.
    Lists of tables (reward components) become `reward.components.0.kind` and so on."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flat(value, f"{name}.")
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            yield from flat({str(i): v for i, v in enumerate(value)}, f"{name}.")
        else:
            yield name, value


SAMPLE_COLUMNS = ("step", "idx", "prompt", "completion", "reward")


def sample_table(rows: Sequence[Sample]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of a step's samples: the fixed columns, then one per reward."""
    names = list(dict.fromkeys(k for r in rows for k in r.components))
    data = [
        [r.step, r.idx, r.prompt, r.completion, r.reward, *(r.components.get(n) for n in names)]
        for r in rows
    ]
    return [*SAMPLE_COLUMNS, *names], data


def finite(values: Mapping[str, float]) -> dict[str, float]:
    """The values a tracker that refuses NaN and inf can take (the store keeps them all)."""
    return {k: float(v) for k, v in values.items() if math.isfinite(v)}
