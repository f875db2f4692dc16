"""Driving the window the way a user does: typing into the form, pressing the buttons."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox


def set_field(window, path: str, text: str) -> None:
    widget = window.setup.form.widget_for(path)
    assert isinstance(widget, QLineEdit), path
    widget.setText(text)
    window.revalidate()


def live_steps(window) -> int:
    series = window.live.series.get("reward/mean")
    return 0 if series is None else series.n


def when_modal(kind, act) -> None:
    """Runs `act(widget)` once a modal `kind` is up (the click that opens it blocks the
    test's own next line, so a timer waits for it)."""

    def poll():
        widget = QApplication.activeModalWidget()
        if isinstance(widget, kind):
            act(widget)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(20, poll)


def answer_the_question(qtbot, button, seen: list[str]) -> None:
    """Clicks `button` of the question box the next action opens, noting its text in `seen`."""

    def answer(box: QMessageBox) -> None:
        seen.append(box.text())
        qtbot.mouseClick(box.button(button), Qt.LeftButton)

    when_modal(QMessageBox, answer)
