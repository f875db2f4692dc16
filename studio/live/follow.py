"""Follow a run that another process writes to the store: new metrics and samples, polled.

Steps are handed on once complete: a step's training metrics and its evaluation are
written one after the other, so a step counts as complete when a later step has begun (or
the run has ended).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from core.events import Metrics
from core.store import Store
from studio.tasks import Task, run_in_background

FOLLOW_MS = 1000
SAMPLES_PER_POLL = 500


class RunFollower(QObject):
    sig_metrics = Signal(list)
    """New complete steps: [core.events.Metrics], in step order."""
    sig_samples = Signal(list)
    """New samples of complete steps: [core.events.Sample]."""
    sig_failed = Signal(str)
    """A read failed (the runs list shows the connection banner); the next poll retries."""

    def __init__(self, store: Store, run_id: int, after_step: int = 0, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.run_id = run_id
        self.done_step = after_step  # every step up to here has been handed on
        # A resumed run redoes the steps after its checkpoint (and replaces their samples).
        self.samples_seen = store.sample_count(run_id, up_to=after_step) if after_step else 0
        self.stopped = False
        self._reading: Task | None = None  # a distant server must not stall the window
        self.timer = QTimer(self, interval=FOLLOW_MS)
        self.timer.timeout.connect(self._poll_later)

    def start(self) -> None:
        self.poll()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self.stopped = True

    def _poll_later(self) -> None:
        """The timer's poll, off the GUI thread; none while the last one still waits."""
        if self._reading is None or self._reading.done:
            self._reading = run_in_background(
                self._read,
                on_done=lambda result: self._read_done(result, None),
                on_error=lambda exc: self._read_done(None, exc),
                parent=self,
            )

    def _read(self):
        done, seen = self.done_step, self.samples_seen
        series = self.store.metrics(self.run_id, since_step=done)
        rows = self.store.samples(self.run_id, offset=seen, limit=SAMPLES_PER_POLL)
        return done, seen, series, rows

    def _read_done(self, result, error) -> None:
        if not self.stopped:
            self._deliver(result, error, final=False)

    def poll(self, final: bool = False) -> None:
        """Hand on the complete steps written since the last poll (`final`: every step)."""
        try:
            result, error = self._read(), None
        except Exception as exc:
            result, error = None, exc
        self._deliver(result, error, final)

    def _deliver(self, result, error, final: bool) -> None:
        if error is not None:  # the store is away: the next poll tries again
            self.sig_failed.emit(str(error))
            return
        done, seen, series, rows = result
        if (done, seen) != (self.done_step, self.samples_seen):
            return  # a read from before the last delivery: its news is old
        newest = max((int(s.steps[-1]) for s in series.values() if len(s.steps)), default=None)
        if newest is not None:
            last = newest if final else newest - 1
            by_step: dict[int, dict[str, float]] = {}
            wall: dict[int, float] = {}
            for key, s in series.items():
                for step, t, value in zip(s.steps, s.wall_times, s.values):
                    if step <= last:
                        by_step.setdefault(int(step), {})[key] = float(value)
                        wall[int(step)] = max(wall.get(int(step), 0.0), float(t))
            events = [Metrics(step, wall[step], by_step[step]) for step in sorted(by_step)]
            if events:
                self.done_step = events[-1].step
                self.sig_metrics.emit(events)
        rows = [r for r in rows if final or r.step <= self.done_step]
        if rows:
            self.samples_seen += len(rows)
            self.sig_samples.emit(rows)
