"""The one background thread that trains, and the pump that brings its events to the GUI.

The thread runs `core.runner.start_run` / `resume_run` (the same calls as the CLI),
which also write every event to the store. Events go into a queue; the pump, a
timer in the GUI thread, drains it at most 20 times a second and emits them as
one list, so a burst of events costs the GUI one signal.
"""

from __future__ import annotations

import gc
import inspect
import queue
from dataclasses import dataclass

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from core import USER_ERRORS, Control, RunConfig, Stopped, Store, preflight, resume_run, start_run
from core.events import Status

PUMP_MS = 50  # at most 20 deliveries a second
_collector = None


def collect_garbage_in_gui_thread() -> None:
    """Python's cyclic GC runs in whichever thread happens to allocate. Run in the training
    thread, it can free a Qt object there whose destructor waits for a Qt lock that the GUI
    thread holds while it waits for the GIL: a deadlock (seen in CI). So automatic GC is
    turned off and pyqtgraph's collector runs it on a timer in the GUI thread instead."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=1.0)


def finish_garbage_collection() -> None:
    """Before the QApplication goes: collect what is left while Qt can still free it (left
    to the interpreter's exit, a Qt wrapper freed after Qt shut down crashes the process),
    then hand GC back to Python."""
    global _collector
    if _collector is not None:
        _collector.timer.stop()
        _collector = None
    gc.collect()
    gc.enable()


@dataclass(frozen=True)
class RunCreated:
    run_id: int


@dataclass(frozen=True)
class RunEnded:
    run_id: int
    state: str  # completed | stopped | failed
    error: str = ""
    error_type: str = ""


@dataclass(frozen=True)
class Progress:
    """A loading / conversion message (model download, GGUF conversion...)."""

    text: str


def _control(pause_on_reward_error: bool) -> Control:
    if "pause_on_reward_error" in inspect.signature(Control).parameters:
        return Control(pause_on_reward_error=pause_on_reward_error)
    return Control()


class RunThread(QThread):
    """Trains one run; everything it reports goes through its queue, `RunCreated` as soon
    as the row exists and `RunEnded` last.

    No Qt signal is emitted from this thread: a cross-thread emit can deadlock against the
    GUI thread (the emitting thread holds the GIL while Qt takes its locks), and a plain
    queue drained by the GUI's timer cannot."""

    def __init__(
        self,
        db_url: str | None,
        cfg: RunConfig | None = None,
        *,
        name: str = "",
        resume_id: int | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.db_url, self.cfg, self.name, self.resume_id = db_url, cfg, name, resume_id
        self.control = _control(pause_on_reward_error=True)
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.run_id = resume_id or 0
        self.state = "loading"
        self.error = ""
        self.error_type = ""  # e.g. RewardConfigError: the window shows it in the reward editor

    def _on_event(self, event) -> None:
        if isinstance(event, Status):
            self.state = event.state
        self.events.put(event)

    def _on_run_id(self, run_id: int) -> None:
        self.run_id = run_id
        self.events.put(RunCreated(run_id))

    def _progress(self, text: str) -> None:
        if self.control.stopped:  # Stop pressed while the model loads or converts
            raise Stopped
        self.events.put(Progress(text))

    def run(self) -> None:  # in the worker thread
        store = None
        try:
            store = Store(self.db_url)
            if self.resume_id is not None:
                resume_run(
                    store,
                    self.resume_id,
                    control=self.control,
                    on_event=self._on_event,
                    progress=self._progress,
                )
            else:
                try:
                    cfg = preflight(self.cfg, self._progress)
                except Stopped:  # before any run row exists: nothing to store
                    cfg = None
                if cfg is not None:
                    start_run(
                        cfg,
                        store,
                        name=self.name,
                        control=self.control,
                        on_event=self._on_event,
                        progress=self._progress,
                        on_run_id=self._on_run_id,
                    )
        except USER_ERRORS as exc:
            self.state, self.error = "failed", _message(exc)
            self.error_type = type(exc).__name__
        except Exception as exc:  # the runner has stored the run as failed with this message
            self.state, self.error = "failed", f"{type(exc).__name__}: {_message(exc)}"
            self.error_type = type(exc).__name__
        finally:
            if store is not None:
                store.close()
        if self.state not in ("completed", "stopped", "failed"):
            self.state = "stopped" if self.control.stopped else self.state
        self.events.put(RunEnded(self.run_id, self.state, self.error, self.error_type))


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or (exc.args[0] if exc.args else str(exc))
    return str(text)


class EventPump(QObject):
    """Drains a worker's queue on a GUI-thread timer and emits the events as one list."""

    delivered = Signal(list)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source: queue.SimpleQueue | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(PUMP_MS)
        self._timer.timeout.connect(self.drain)

    def follow(self, source: queue.SimpleQueue) -> None:
        self.source = source
        self._timer.start()

    def stop(self) -> None:
        self.drain()
        self._timer.stop()
        self.source = None

    def drain(self) -> None:
        if self.source is None:
            return
        batch = []
        while True:
            try:
                batch.append(self.source.get_nowait())
            except queue.Empty:
                break
        if batch:
            self.delivered.emit(batch)
