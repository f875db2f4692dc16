"""What a live run says, as the window shows it: its events on the curves, the samples,
the status bar and the Log; its pauses, its reward's failures and its end. A part of
`MainWindow` (which mixes it in), kept apart so each file holds one job."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from core import RunState
from core.events import Checkpoint, Evaluating, Log, Metrics, RewardFailure, Samples, Status
from studio.live import Held, Progress, RunEnded


class LiveEvents:
    """The window's handlers for its live run's signals (`sig_created`, `sig_events`,
    `sig_ended`); it uses the window's panels, status bar and toolbar."""

    def _run_created(self, run_id: int) -> None:
        self.last_run_id = run_id
        self._remember_shown(run_id)
        if self.shown_run_id is None:  # the live run is on screen (not a stored one)
            self.shown_run_id = run_id
        self.runs.live_run_id = run_id
        self.runs.refresh()

    def _on_events(self, events: list) -> None:
        showing_live = self.shown_run_id == self._live_id() or self.shown_run_id is None
        for event in events:
            if isinstance(event, Metrics):
                self.live.add(event.step, event.wall_time, event.values)
                if showing_live:
                    self.dashboard.mark_dirty()
                self.status_bar.step(event, self.live_run.planned_steps(), self.live)
            elif isinstance(event, Samples):
                if showing_live:
                    self.samples.add_items(event.rows)
            elif isinstance(event, Status):
                self._status(event)
            elif isinstance(event, Log):
                self._log(event.level, event.message)
            elif isinstance(event, Checkpoint):
                self._log("info", f"checkpoint at step {event.step}: {event.path}")
            elif isinstance(event, Progress):
                self.status_bar.loading(event.text)
            elif isinstance(event, Held):
                self._held()
            elif isinstance(event, Evaluating):
                self.status_bar.evaluating(event.prompts)
            elif isinstance(event, RewardFailure):
                self._reward_failed(event)

    def _status(self, event: Status) -> None:
        self.status_bar.status(event)
        if event.state == RunState.PAUSED:
            self.pause_said = True
            self._log("info", f"Paused at step {event.step}: {event.message or 'Paused'}")
        elif event.state == RunState.RUNNING and event.message == "Resumed":
            pass  # said when Resume was pressed
        elif event.state == RunState.RUNNING:
            self._log("info", event.message)
        else:
            self._log("info", f"{event.state}: {event.message}")
        self._update_controls()

    def _held(self) -> None:
        """The loop holds: a pause asked for inside a step (between two tokens) is shown
        now, not when the step would have ended."""
        if self.live_run is None or not self.live_run.paused:
            return
        if not self.pause_said:
            self.pause_said = True
            self.status_bar.paused(mid_step=True)
            self._log("info", "Paused inside a step (between two tokens); Resume goes on there")
        self._update_controls()

    def _reward_failed(self, event: RewardFailure) -> None:
        self.docks["reward"].raise_()
        self.rewards.show_error(
            f"{event.message}\nFix the code, then press Resume.", event.lineno, event.component
        )
        self._say(f"Reward failed (run paused): {event.message}")
        self._log("error", event.message)

    def _ended(self, ended: RunEnded) -> None:
        run_id, state, error = ended.run_id, ended.state, ended.error
        self.status_bar.ended(run_id, state)
        self.runs.live_run_id = None
        self.runs.refresh()
        if state == RunState.FAILED and not run_id and ended.error_type.startswith("Reward"):
            # the reward did not load (a syntax error...): no run exists; show it at the code
            self.docks["reward"].raise_()
            self.rewards.show_error(error)
            self._say(f"The reward does not load: {error}")
        elif state == RunState.FAILED:
            self._say(error)
            self._log("error", error)
            self.error_box = QMessageBox(
                QMessageBox.Critical, "Run failed", error or "The run failed", parent=self
            )
            self.error_box.open()  # not modal-blocking: the window stays usable
        if self.live_run is not None:
            self.live_run.deleteLater()
            self.live_run = None
        self._update_controls()

    def _log(self, level: str, text: str) -> None:
        self.log.appendPlainText(f"[{level}] {text}")

    def _say(self, text: str, error: bool = True) -> None:
        self.toolbar.say(text, error)
