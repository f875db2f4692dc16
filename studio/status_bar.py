"""The window's status bar while a run trains: a progress bar for loading, the step, the
ETA, the device and the peak memory, fed the run's events."""

from __future__ import annotations

import math
import re
import statistics
from collections import deque

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from core.events import Metrics, RunState, Status
from core.store import STORE_FULL
from studio.panels.dashboard import RunSeries
from studio.run_toolbar import ConnectionBanner

RECENT_STEPS = 8  # the ETA's time per step: the median of the last few steps' own durations


class RunStatusBar(QStatusBar):
    """`banner` hears the run's states too (it says when the store is full)."""

    def __init__(
        self, banner: ConnectionBanner | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.banner = banner or ConnectionBanner()
        self.step_label = QLabel("No run")
        self.eta_label = QLabel()
        self.device_label = QLabel()
        self.memory_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(160)
        self.progress.setRange(0, 0)  # busy: loading has no known length
        self.progress.hide()
        self._durations: deque[float] = deque(maxlen=RECENT_STEPS)
        self._step_text = ""  # "Step 19 / 40": what a pause or an evaluation adds to
        for w in (
            self.progress,
            self.step_label,
            self.eta_label,
            self.device_label,
            self.memory_label,
        ):
            self.addPermanentWidget(w)

    def starting(self, text: str) -> None:
        self._durations.clear()
        self.eta_label.clear()
        self.progress.setRange(0, 0)
        self.progress.show()
        self.step_label.setText(text)

    def loading(self, text: str) -> None:
        """A loading message; one ending in "NN%" (the model conversion) fills the bar."""
        percent = re.search(r"(\d{1,3})%$", text)
        if percent:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(percent.group(1)))
        else:
            self.progress.setRange(0, 0)  # busy: no known length
        self.progress.show()
        self.step_label.setText(text)

    def step(self, event: Metrics, total: int, live: RunSeries) -> None:
        """A step's metrics: its number, the ETA from recent steps' own durations (pauses,
        loading and evaluation left out), the memory. An evaluation's metrics only end the
        busy bar."""
        if event.values and all(key.startswith("eval/") for key in event.values):
            self.progress.hide()  # the held-out evaluation is done
            self.step_label.setText(self._step_text or self.step_label.text())
            return
        self._step_text = f"Step {event.step} / {total}" if total else f"Step {event.step}"
        self.step_label.setText(self._step_text)
        per_step = self._per_step(event, live)
        if per_step is not None and total:
            left = per_step * max(total - event.step, 0)
            self.eta_label.setText(f"ETA {clock(left)} ({per_step:.1f} s/step)")
        mem = event.values.get("memory/peak_mb")
        if mem is not None and math.isfinite(mem):
            self.memory_label.setText(f"Memory {mem:,.0f} MB")

    def _per_step(self, event: Metrics, live: RunSeries) -> float | None:
        duration = event.values.get("time/step_s")
        if duration is not None and math.isfinite(duration):
            self._durations.append(duration)
            return statistics.median(self._durations)
        if not (event.step and event.wall_time > 0):  # a run stored before steps timed themselves
            return None
        first = live.series.get("reward/mean")
        done = event.step - (int(first.steps[0]) - 1 if first is not None and first.n else 0)
        return event.wall_time / max(done, 1)

    def evaluating(self, prompts: int) -> None:
        """The held-out evaluation runs: a busy bar, until its metrics arrive."""
        self.progress.setRange(0, 0)
        self.progress.show()
        where = f"{self._step_text}: " if self._step_text else ""
        self.step_label.setText(f"{where}evaluating on {prompts} held-out prompts...")

    def status(self, event: Status) -> None:
        self.banner.show_status(event)
        if event.state == RunState.RUNNING:
            self.progress.hide()
            if event.message.startswith("Training"):
                device = event.message.split("(")[-1].rstrip(")") if "(" in event.message else ""
                self.device_label.setText(device)
        elif event.state == RunState.PAUSED and event.message.startswith(STORE_FULL):
            self.step_label.setText(f"Waiting for space at step {event.step} / {event.total_steps}")
        elif event.state == RunState.PAUSED:
            self.step_label.setText(f"Paused at step {event.step} / {event.total_steps}")
            self.eta_label.setText("ETA: paused")

    def pausing(self) -> None:
        self.step_label.setText(f"{self._step_text or self.step_label.text()} (pausing...)")

    def paused(self, mid_step: bool = False) -> None:
        """The loop holds (`mid_step`: between two tokens of the next step): no ETA runs."""
        text = self._step_text.replace("Step", "Paused at step") if self._step_text else "Paused"
        self.step_label.setText(text + (" (mid-step)" if mid_step else ""))
        self.eta_label.setText("ETA: paused")
        self.progress.hide()

    def resumed(self) -> None:
        self.step_label.setText(self._step_text or "Resuming...")
        self.eta_label.clear()  # the next step's duration says it again

    def say(self, text: str) -> None:
        self.step_label.setText(text)

    def ended(self, run_id: int | None, state: str) -> None:
        self.banner.show_status(Status(RunState.COMPLETED))  # a full store says no more
        self.progress.hide()
        self.step_label.setText(f"Run {run_id or ''} {state}".replace("  ", " "))
        self.eta_label.clear()
        self._step_text = ""


def clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
