"""Trackers beside the store (`logging.report_to`, TRL's name): TensorBoard, W&B, MLflow
and Trackio, fed from the same events the store records.

Each lives in a module of its own and is imported only when asked for, so a tracker that
is not installed, or whose server is down, is one warning in the run's log and the run
goes on without it. Only rank 0 reports (the runner opens them there)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable

from core.events import Event, Metrics, Samples
from core.trackers.base import TrackedRun, Tracker

__all__ = ["TRACKERS", "TrackedRun", "Tracker", "TrackerSink", "open_trackers"]

# name -> (module, class, the package it needs); `pip install "rlstudio[name]"` brings it
TRACKERS = {
    "tensorboard": ("core.trackers.to_tensorboard", "TensorBoardTracker", "tensorboard"),
    "wandb": ("core.trackers.to_wandb", "WandbTracker", "wandb"),
    "mlflow": ("core.trackers.to_mlflow", "MlflowTracker", "mlflow"),
    "trackio": ("core.trackers.to_trackio", "TrackioTracker", "trackio"),
}

Say = Callable[[str, str], None]  # (level, message) into the run's log


def chosen(report_to: Iterable[str]) -> list[str]:
    """TRL's reading of `report_to`: names, "all" (every one installed), "none"."""
    names = list(dict.fromkeys(report_to))
    if "none" in names:
        return []
    if "all" in names:
        return [n for n, (_m, _c, package) in TRACKERS.items() if _installed(package)]
    return names


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


class TrackerSink:
    """Hands each Metrics and Samples event to every open tracker. A tracker that fails
    says so once (a warning in the log) and is dropped; the others and the run go on."""

    def __init__(self, trackers: list[Tracker], say: Say) -> None:
        self.trackers = trackers
        self._say = say

    def on_event(self, event: Event) -> None:
        if isinstance(event, Metrics):
            self._each(lambda t: t.log_metrics(event.step, event.values))
        elif isinstance(event, Samples) and event.rows:
            self._each(lambda t: t.log_samples(event.step, event.rows))

    def _each(self, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as exc:
                self.trackers.remove(tracker)
                self._say("warning", f"{tracker.name}: stopped reporting: {_reason(exc)}")
                _close_quietly(tracker)

    def close(self) -> None:
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as exc:
                self._say("warning", f"{tracker.name}: could not close: {_reason(exc)}")
        self.trackers = []


def open_trackers(report_to: Iterable[str], run: TrackedRun, say: Say) -> TrackerSink:
    """Opens each tracker `report_to` names; one that cannot open is a warning, not an
    error. Each one that opens says where it writes."""
    trackers: list[Tracker] = []
    for name in chosen(report_to):
        module, cls, package = TRACKERS[name]
        if not _installed(package):
            say(
                "warning",
                f"{name}: not installed, so not reporting "
                f'(pip install "rlstudio[{name}]" or pip install {package})',
            )
            continue
        try:
            tracker = getattr(importlib.import_module(module), cls)(run)
        except Exception as exc:
            say("warning", f"{name}: could not start, so not reporting: {_reason(exc)}")
            continue
        trackers.append(tracker)
        say("info", f"{name}: {tracker.where}")
    return TrackerSink(trackers, say)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def _close_quietly(tracker: Tracker) -> None:
    try:
        tracker.close()
    except Exception:  # it already failed once and said so
        return
