"""One store read at a time off the GUI thread, its answer delivered back to it.

A PostgreSQL server that has gone away makes a read wait for the connect timeout (10 s);
done on the GUI thread every few seconds, that would freeze the window while the banner
says the server is away. The reading thread touches no Qt object: it leaves its answer in
a queue that a timer of the GUI thread collects, so a window closed meanwhile is safe.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

COLLECT_MS = 50


class BackgroundRead(QObject):
    done = Signal(object, object)  # the result, or None and the exception

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.busy = False
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._timer = QTimer(self, interval=COLLECT_MS)
        self._timer.timeout.connect(self._collect)

    def start(self, read: Callable[[], Any]) -> bool:
        """Run `read` in a thread unless one is still running; False when skipped."""
        if self.busy:
            return False
        self.busy = True
        threading.Thread(target=self._run, args=(read, self._answers), daemon=True).start()
        self._timer.start()
        return True

    @staticmethod
    def _run(read: Callable[[], Any], answers: queue.SimpleQueue) -> None:
        try:
            answers.put((read(), None))
        except Exception as exc:  # handed to the GUI thread, which says what went wrong
            answers.put((None, exc))

    def _collect(self) -> None:
        try:
            result, error = self._answers.get_nowait()
        except queue.Empty:
            return
        self._timer.stop()
        self.busy = False
        self.done.emit(result, error)
