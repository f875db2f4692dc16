"""One store read at a time off the GUI thread, its answer delivered back to it.

A PostgreSQL server that has gone away makes a read wait for the connect timeout (10 s);
done on the GUI thread every few seconds, that would freeze the window while the banner
says the server is away.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal


class BackgroundRead(QObject):
    done = Signal(object, object)  # the result, or None and the exception

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.busy = False
        self.done.connect(self._idle)

    def start(self, read: Callable[[], Any]) -> bool:
        """Run `read` in a thread unless one is still running; False when skipped."""
        if self.busy:
            return False
        self.busy = True
        threading.Thread(target=self._run, args=(read,), daemon=True).start()
        return True

    def _run(self, read: Callable[[], Any]) -> None:
        try:
            result, error = read(), None
        except Exception as exc:  # handed to the GUI thread, which says what went wrong
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the window closed meanwhile
            self.done.emit(result, error)  # queued: the slots run in the GUI thread

    def _idle(self, *_: Any) -> None:
        self.busy = False
