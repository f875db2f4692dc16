"""Driving the window the way a user does: typing into the form, pressing the buttons."""

from __future__ import annotations

from PySide6.QtWidgets import QLineEdit


def set_field(window, path: str, text: str) -> None:
    widget = window.setup.form.widget_for(path)
    assert isinstance(widget, QLineEdit), path
    widget.setText(text)
    window.revalidate()


def live_steps(window) -> int:
    series = window.live.series.get("reward/mean")
    return 0 if series is None else series.n
