"""The window's toolbars: the run controls with a one-line message, and the banner that
says what is wrong with the store (connection lost, read-only, full)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolBar

from core.events import RunState, Status
from core.store import STORE_FULL, Store, shown_url
from studio.panels.elided_label import ElidedLabel

MANY = "; a run of several processes cannot (Stop saves a checkpoint)"


class RunToolbar(QToolBar):
    """Start, Pause / Resume, Stop, Save checkpoint, Show live run, Open store, and the
    message (why Start is off, why a run failed); the window gives the slots."""

    def __init__(self, slots: dict[str, Callable[[], None]]) -> None:
        super().__init__("Run")
        self.setObjectName("toolbar-run")
        self.start_action = self._action("Start", slots["start"], "Ctrl+Return", "Start a run")
        self.pause_action = self._action("Pause", slots["pause"], "Ctrl+P", "Pause / resume")
        self.stop_action = self._action(
            "Stop", slots["stop"], "Ctrl+.", "Stop after this token or step"
        )
        self.save_action = self._action(
            "Save checkpoint", slots["save"], "Ctrl+S", "Save a checkpoint now"
        )
        self.addSeparator()
        self.live_action = self._action(
            "Show live run", slots["live"], "Ctrl+L", "Back to the live run"
        )
        self.addSeparator()
        self.open_store_action = self._action(
            "Open store...", slots["open_store"], "Ctrl+O", "Show the runs of another store"
        )
        self.message = ElidedLabel()  # one line: a long message never moves the layout
        self.message.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.message.setStyleSheet("color: #d9534f; padding-left: 8px;")
        self.addWidget(self.message)

    def _action(self, text: str, slot, shortcut: str, tip: str) -> QAction:
        a = QAction(text, self)
        a.setShortcut(QKeySequence(shortcut))
        a.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def show_state(
        self,
        *,
        running: bool,
        pausable: bool,
        paused: bool,
        holding: bool = False,
        live_elsewhere: bool,
        configured: bool,
        config_error: str,
    ) -> None:
        """Every enabled state and text, from the run's state: `pausable` (a run in the
        window), `live_elsewhere` (a stored run is on screen while one trains), whether the
        settings make a config (`configured`) and if not, why (`config_error`). A pause
        asked for reads "Pausing..." until the loop holds (`holding`), then "Resume"."""
        self.start_action.setEnabled(not running and configured)
        self.start_action.setToolTip(config_error or "Start a run (Ctrl+Return)")
        self.pause_action.setEnabled(pausable)
        self.stop_action.setEnabled(running)
        self.save_action.setEnabled(pausable)
        self.pause_action.setToolTip("Pause the run" + ("" if pausable or not running else MANY))
        self.live_action.setEnabled(running and live_elsewhere)
        pausing = pausable and paused and not holding
        self.pause_action.setText(
            "Pausing..." if pausing else "Resume" if pausable and paused else "Pause"
        )
        if not running:  # a run's failure stays said until a setting needs saying instead
            if config_error:
                self.message.setText(f"Cannot start: {config_error}")
            elif self.message.text().startswith("Cannot start"):
                self.message.clear()

    def clear_message(self) -> None:
        self.message.clear()

    def say(self, text: str, error: bool = True) -> None:
        self.message.setStyleSheet(
            f"color: {'#d9534f' if error else '#3c9a5f'}; padding-left: 8px;"
        )
        self.message.setText(text)


class ConnectionBanner(QToolBar):
    """What is wrong with the store, one line across the window while it lasts: the
    connection lost, the store read-only, the store full under a training run."""

    def __init__(self) -> None:
        super().__init__("Connection")
        self.setObjectName("toolbar-banner")
        self.setMovable(False)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setStyleSheet("background: #8a6d1f; color: white; padding: 4px 8px;")
        self.addWidget(self.label)
        self._notes: dict[str, str] = {}  # what is said now, by what it is about
        self.hide()

    def show_connection(self, ok: bool, reason: str, where: str) -> None:
        """Shown while the database at `where` does not answer (`reason`), hidden once it does."""
        self._note(
            "connection",
            None
            if ok
            else f"Lost the connection to {where} ({reason}). Retrying every few seconds; "
            "a training run keeps its rows and writes them once the database is back.",
        )

    def show_store(self, store: Store) -> None:
        """The store the window shows now: a read-only one says so (and why)."""
        self._notes.clear()
        reason = store.read_only_reason
        self._note(
            "store",
            None
            if reason is None
            else f"{shown_url(store.url)} is read-only ({reason}): its runs can be viewed, "
            "not trained, resumed or deleted.",
        )

    def show_status(self, event: Status) -> None:
        """A run paused because its store is full says so until it runs (or ends)."""
        full = event.state == RunState.PAUSED and event.message.startswith(STORE_FULL)
        self._note("full", event.message if full else None)

    def _note(self, about: str, text: str | None) -> None:
        if text is None:
            self._notes.pop(about, None)
        else:
            self._notes[about] = text
        self.label.setText("  ".join(self._notes.values()))
        self.setVisible(bool(self._notes))
