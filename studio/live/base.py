"""What every live run is to the window, whichever way it trains (see `studio.live`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

from core import Store
from core.events import RunState, SettingsChanged

TERMINAL = (RunState.COMPLETED, RunState.STOPPED, RunState.FAILED)  # how a run can end


@dataclass(frozen=True)
class RunCreated:
    """The run's row exists in the store (a fresh run learns its id a little after Start)."""

    run_id: int


@dataclass(frozen=True)
class RunEnded:
    """The run is over; the last thing a live run sends."""

    run_id: int | None
    state: str  # a RunState (completed | stopped | failed), or what the store says
    error: str = ""
    error_type: str = ""  # e.g. RewardConfigError: the window shows it in the reward editor


@dataclass(frozen=True)
class Held:
    """The loop has stopped moving for a pause: between steps, or between two tokens of a
    step's generation."""


@dataclass(frozen=True)
class Progress:
    """A loading / conversion message (model download, GGUF conversion...)."""

    text: str


class LiveRun(QObject):
    """A run training now, as the window sees it: started, paused, resumed, stopped, asked
    for a checkpoint, and telling what happens through three signals, all emitted in the
    GUI thread. `sig_ended` comes last, once."""

    sig_events = Signal(list)
    """A batch of the run's events, in order: `core.events` types and `Progress`."""
    sig_created = Signal(int)
    """The run's row exists: its id."""
    sig_ended = Signal(object)
    """The run is over: a `RunEnded`."""

    can_pause = False  # pause, resume and "save a checkpoint now"
    starting_text = "Starting..."
    stopping_text = "Stopping..."

    def __init__(
        self, store: Store, resume_id: int | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store  # the window's: the run is written to the same database
        self.resume_id = resume_id  # a stored run carried on, else None (a fresh run)
        self.run_id: int | None = resume_id  # None until the fresh run's row exists
        self.total_steps = 0  # the planned steps, where known before the store says
        self.started = self.ended = False

    def planned_steps(self) -> int:
        """The steps the run trains to: a fresh run's from its config, else the store's
        (read once)."""
        if not self.total_steps and self.run_id:
            self.total_steps = self.store.run(self.run_id).total_steps
        return self.total_steps

    @property
    def running(self) -> bool:
        return self.started and not self.ended

    @property
    def paused(self) -> bool:
        return False

    @property
    def holding(self) -> bool:
        """Paused, and the loop sits still now (a pause asked for lands a moment later)."""
        return False

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        """Hold between two tokens or two steps (where `can_pause`)."""

    def resume(self) -> None:
        """Go on after a pause."""

    def request_checkpoint(self) -> None:
        """Save a checkpoint before the next step (where `can_pause`)."""

    def change_settings(self, changes: dict) -> None:
        """Settings for the run to take before its next step (where `can_pause`): dotted
        keys of `core.config.RESUMABLE_SETTINGS`; the run says what it did with them."""

    def stop_and_wait(self, timeout_s: float) -> bool:
        """Stop, and wait until the run has ended and said so, keeping the window painted
        meanwhile; False when `timeout_s` went by first."""
        if not self.running:
            return True
        self.stop()
        deadline = time.monotonic() + timeout_s
        while not self.ended:
            if time.monotonic() > deadline:
                return False
            QApplication.processEvents()
            if not self.ended:
                self._wait_a_little()
        return True

    def _wait_a_little(self) -> None:
        """Block for about 50 ms, or less where the run has news."""
        time.sleep(0.05)

    def _hand_on(self, items: list) -> None:
        """Emit a batch in order: events as `sig_events`, a `RunCreated` as `sig_created`."""
        chunk: list = []
        for item in items:
            if isinstance(item, RunCreated):
                if chunk:
                    self.sig_events.emit(chunk)
                    chunk = []
                self._created(item.run_id)
            else:
                if isinstance(item, SettingsChanged):  # the steps it trains to now
                    self.total_steps = item.total_steps
                chunk.append(item)
        if chunk:
            self.sig_events.emit(chunk)

    def _created(self, run_id: int) -> None:
        self.run_id = run_id
        self.sig_created.emit(run_id)

    def _end(self, ended: RunEnded) -> None:
        self.ended = True
        self.sig_ended.emit(ended)
