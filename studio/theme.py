"""Light or dark, following the system; the plots follow the window's palette."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")  # draws the system's light or dark palette the same on every OS
    _plots_follow_palette(app)
    hints = app.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(lambda _: _plots_follow_palette(app))


def is_dark(app: QApplication) -> bool:
    hints = app.styleHints()
    if hasattr(hints, "colorScheme") and hints.colorScheme() != Qt.ColorScheme.Unknown:
        return hints.colorScheme() == Qt.ColorScheme.Dark
    return app.palette().color(QPalette.Window).lightness() < 128


def _plots_follow_palette(app: QApplication) -> None:
    palette = app.palette()
    pg.setConfigOptions(
        background=palette.color(QPalette.Base),
        foreground=palette.color(QPalette.Text),
        antialias=False,  # thin lines over many points: aliasing is cheaper and still crisp
    )
