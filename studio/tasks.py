"""The studio's one way to work off the GUI thread (Anki's `run_in_background`).

`fn` runs in a plain thread that touches no Qt object. What it returns (or raises), and
what it reports on the way (`on_progress`), goes into a queue; a timer of the GUI thread
drains that queue at most 20 times a second and calls the callbacks there, a burst of
reports as one list. So a worker thread never emits a Qt signal (a cross-thread emit can
deadlock against the GUI thread: the emitting thread holds the GIL while Qt takes its
locks), and a window closed meanwhile is safe: its timer goes with it, the answer is
dropped.

    run_in_background(store.runs, on_done=self._show, on_error=self._lost, parent=self)
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QTimer

POLL_MS = 50  # at most 20 deliveries a second
_DONE, _FAILED, _PROGRESS = range(3)  # what a queued answer is
_collector = None


class Task:
    """One call of `fn` in a background thread; see `run_in_background`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None,
        on_progress: Callable[[list], None] | None,
        parent: QObject,
    ) -> None:
        self.on_done, self.on_error, self.on_progress = on_done, on_error, on_progress
        self.done = False  # the answer has been handed to on_done / on_error
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._timer = QTimer(parent, interval=POLL_MS)
        self._timer.timeout.connect(lambda: self.drain())  # holds the task until it is over
        args = () if on_progress is None else (self._report,)
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()
        self._timer.start()

    def _report(self, item: Any) -> None:  # in the worker thread
        self._answers.put((_PROGRESS, item))

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:  # in the worker thread
        try:
            self._answers.put((_DONE, fn(*args)))
        except BaseException as exc:  # handed to the GUI thread, which says what went wrong
            self._answers.put((_FAILED, exc))

    def drain(self) -> None:
        """Hand on what has arrived (the timer calls this; a caller waiting may too). Once
        the parent has gone (a closed window), nothing is handed on."""
        if self.done or not shiboken6.isValid(self._timer):
            return
        batch, answer = [], None
        while answer is None:
            try:
                kind, value = self._answers.get_nowait()
            except queue.Empty:
                break
            if kind == _PROGRESS:
                batch.append(value)
            else:
                answer = (kind, value)
        if batch and self.on_progress is not None:
            self.on_progress(batch)
        if answer is not None:
            self._finish(*answer)

    def _finish(self, kind: str, value: Any) -> None:
        self.done = True
        self._timer.stop()
        self._timer.deleteLater()
        if kind == _DONE:
            self.on_done(value)
        elif self.on_error is not None:
            self.on_error(value)
        else:
            raise value  # nobody asked for it: an error is never dropped silently

    def wait(self, timeout_s: float) -> bool:
        """Block until `fn` has returned (at most `timeout_s`); True when it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def run_in_background(
    fn: Callable[..., Any],
    on_done: Callable[[Any], None],
    on_error: Callable[[BaseException], None] | None = None,
    *,
    on_progress: Callable[[list], None] | None = None,
    parent: QObject,
) -> Task:
    """Run `fn()` off the GUI thread; `on_done(result)` or `on_error(exception)` is called
    in the GUI thread once it is over. With `on_progress`, `fn` is called as `fn(report)`:
    each `report(item)` arrives, in order and batched, as `on_progress([item, ...])` before
    the answer. Without `on_error`, an exception is raised again in the GUI thread."""
    return Task(fn, on_done, on_error, on_progress, parent)


def collect_garbage_in_gui_thread() -> None:
    """Python's cyclic GC runs in whichever thread happens to allocate. Run in a worker
    thread (the training one), it can free a Qt object there whose destructor waits for a Qt
    lock that the GUI thread holds while it waits for the GIL: a deadlock (seen in CI). So
    automatic GC is turned off and pyqtgraph's collector runs it on a timer in the GUI
    thread instead."""
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
