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


def answer_the_question(qtbot, button, seen: list[str]) -> None:
    """Clicks `button` of the question box the next action opens, noting its text in `seen`
    (a modal box blocks the test's own line, so a timer answers it)."""

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        qtbot.mouseClick(box.button(button), Qt.LeftButton)

    QTimer.singleShot(20, answer)
