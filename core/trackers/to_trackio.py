"""Trackio (Hugging Face's local-first tracker): a local database (TRACKIO_DIR, else its
own cache folder); `trackio show` opens its dashboard."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from core.events import Sample
from core.trackers.base import TrackedRun, sample_table


class TrackioTracker:
    name = "trackio"

    def __init__(self, run: TrackedRun) -> None:
        import trackio

        self._trackio = trackio
        project = os.environ.get("TRACKIO_PROJECT", "rlstudio")
        self._run = trackio.init(project=project, name=run.name, config=dict(run.config))
        self.where = f"project {project!r} (`trackio show --project {project}`)"

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        self._run.log(dict(values), step=step)

    def log_samples(self, step: int, rows: Sequence[Sample]) -> None:
        columns, data = sample_table(rows)
        self._run.log({"samples": self._trackio.Table(columns=columns, data=data)}, step=step)

    def close(self) -> None:
        self._run.finish()
