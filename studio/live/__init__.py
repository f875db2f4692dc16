"""The run training now, one abstraction with two ways to train:

- `in_window.InWindowRun`: one process, a background thread of the window (pause, resume,
  "save a checkpoint now");
- `processes.ProcessesRun`: several local processes under torchrun, followed through the
  store (`follow.py`); Stop saves a checkpoint, there is no pause.

The window holds one `LiveRun` and talks to it the same way whichever it is: `start`,
`pause`, `resume`, `stop`, `request_checkpoint`, `can_pause`, `run_id`, and the signals
`sig_events`, `sig_created`, `sig_ended`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from core import RunConfig, Store
from studio.live.base import Held, LiveRun, Progress, RunCreated, RunEnded
from studio.live.in_window import InWindowRun
from studio.live.processes import ProcessesRun

__all__ = [
    "Held",
    "InWindowRun",
    "LiveRun",
    "ProcessesRun",
    "Progress",
    "RunCreated",
    "RunEnded",
    "launch_problem",
    "new_run",
    "restarted_run",
    "resumed_run",
]


def new_run(processes: int, cfg: RunConfig, store: Store, name: str, parent: QObject) -> LiveRun:
    """A fresh run of `cfg`, in the window (one process) or under torchrun (several)."""
    if processes > 1:
        return ProcessesRun.train(processes, cfg, store, name, parent=parent)
    return InWindowRun(store, cfg, name=name, parent=parent)


def resumed_run(
    processes: int, run_id: int, store: Store, after_step: int, parent: QObject, overrides=None
) -> LiveRun:
    """The stored run `run_id` carried on from its newest checkpoint (`after_step`), with
    the changed settings `overrides` ({"training.learning_rate": 1e-5})."""
    overrides = overrides or {}
    if processes > 1:
        return ProcessesRun.carry_on(processes, run_id, store, after_step, overrides, parent)
    return InWindowRun(store, resume_id=run_id, overrides=overrides, parent=parent)


def restarted_run(
    processes: int, run_id: int, store: Store, overrides: dict, parent: QObject
) -> LiveRun:
    """Run `run_id`'s settings trained again from the start, as a new run linked to it."""
    if processes > 1:
        return ProcessesRun.start_over(processes, run_id, store, overrides, parent)
    return InWindowRun(store, restart_of=run_id, overrides=overrides, parent=parent)


def launch_problem(processes: int, cfg: RunConfig) -> str:
    """Why `cfg` cannot train as `processes` processes ("" when it can)."""
    if processes > cfg.training.batch_size:
        n = processes
        return f"{n} processes need at least {n} prompts per step (training.batch_size)"
    return ""
