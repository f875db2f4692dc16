"""A run trained in a background thread of the window (one process: pause, resume and
"save a checkpoint now" work here).

The thread runs `core.start_run` / `core.resume_run` (the same calls as the CLI), which also
write every event to the store. Events travel through `studio.tasks`: a queue that a GUI
timer drains at most 20 times a second, so a burst of events costs the GUI one signal and
the training thread never emits one.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject

from core import (
    USER_ERRORS,
    Control,
    RunConfig,
    Stopped,
    Store,
    preflight,
    restart_run,
    resume_run,
    start_run,
)
from core.events import RunState, Status
from studio.live.base import TERMINAL, Held, LiveRun, Progress, RunCreated, RunEnded
from studio.tasks import Task, run_in_background

JOIN_S = 5  # the thread has sent its last word: it returns at once


class InWindowRun(LiveRun):
    """Trains one run (a fresh one from `cfg`, or the stored `resume_id`) in a thread."""

    can_pause = True
    stopping_text = "Stopping after the current token or step..."

    def __init__(
        self,
        store: Store,
        cfg: RunConfig | None = None,
        *,
        name: str = "",
        resume_id: int | None = None,
        restart_of: int | None = None,
        overrides: dict | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(store, resume_id, parent)
        self.cfg, self.name = cfg, name
        # a resume's changed settings; or the stored run a fresh run starts over (restart_of)
        self.restart_of, self.overrides = restart_of, overrides or {}
        self.total_steps = cfg.training.steps if cfg is not None else 0
        self.control = Control(pause_on_reward_error=True)
        self._task: Task | None = None

    @property
    def paused(self) -> bool:
        return self.control.paused

    @property
    def holding(self) -> bool:
        return self.control.holding

    def start(self) -> None:
        self.started = True
        self._task = run_in_background(
            self._train,
            on_done=self._over,
            on_error=lambda exc: self._over(
                RunEnded(self.run_id, RunState.FAILED, str(exc), type(exc).__name__)
            ),
            on_progress=self._hand_on,
            parent=self,
        )

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def stop(self) -> None:
        self.control.stop()

    def request_checkpoint(self) -> None:
        self.control.request_checkpoint()

    def change_settings(self, changes: dict) -> None:
        self.control.request_settings(changes)

    def _wait_a_little(self) -> None:
        self._task.drain()
        if not self.ended:
            self._task.wait(0.05)

    def _over(self, ended: RunEnded) -> None:
        self._task.wait(JOIN_S)
        self._end(ended)

    # --- in the worker thread -----------------------------------------------------------

    def _train(self, report: Callable[[object], None]) -> RunEnded:
        """The run, start to end; every event goes to `report`, `RunCreated` as soon as the
        row exists. Returns how it ended (a failure is stored by the runner too)."""
        run_id, state, error, error_type = self.resume_id or 0, RunState.LOADING, "", ""

        def on_event(event) -> None:
            nonlocal state
            if isinstance(event, Status):
                state = event.state
            report(event)

        def on_run_id(new_id: int) -> None:
            nonlocal run_id
            run_id = new_id
            report(RunCreated(new_id))

        # the moment the loop holds, the window hears it (within one drain of the queue)
        self.control.on_hold = lambda: report(Held())

        def progress(text: str) -> None:
            if self.control.stopped:  # Stop pressed while the model loads or converts
                raise Stopped
            report(Progress(text))

        store = None
        try:
            store = Store(self.store.url)  # a session of its own, for this thread
            self._run_it(store, on_event, on_run_id, progress)
        except USER_ERRORS as exc:
            state, error, error_type = RunState.FAILED, _message(exc), type(exc).__name__
        except Exception as exc:  # the runner has stored the run as failed with this message
            error = f"{type(exc).__name__}: {_message(exc)}"
            state, error_type = RunState.FAILED, type(exc).__name__
        finally:
            if store is not None:
                store.close()
        if state not in TERMINAL:
            state = RunState.STOPPED if self.control.stopped else state
        return RunEnded(run_id, state, error, error_type)

    def _run_it(self, store: Store, on_event, on_run_id, progress) -> None:
        """The engine's call for this run: a fresh start, a resume, or a restart."""
        how = {"control": self.control, "on_event": on_event, "progress": progress}
        if self.restart_of is not None:  # a new run linked to the old one
            restart_run(
                store, self.restart_of, overrides=self.overrides, on_run_id=on_run_id, **how
            )
        elif self.resume_id is not None:
            resume_run(store, self.resume_id, overrides=self.overrides, **how)
        else:
            try:
                cfg = preflight(self.cfg, progress)
            except Stopped:  # before any run row exists: nothing to store
                return
            start_run(cfg, store, name=self.name, on_run_id=on_run_id, **how)


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or (exc.args[0] if exc.args else str(exc))
    return str(text)
