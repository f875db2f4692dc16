"""Light or dark: the system's by default, or the one chosen in View > Theme (kept in
studio.ini); the plots follow the window's palette."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

THEMES = {"system": None, "light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}


def apply_theme(app: QApplication, theme: str = "system") -> None:
    app.setStyle("Fusion")  # draws the system's light or dark palette the same on every OS
    hints = app.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(lambda _: _plots_follow_palette(app))
    set_theme(app, theme)
    _plots_follow_palette(app)


def set_theme(app: QApplication, theme: str) -> None:
    """ "system", "light" or "dark" (an unknown name is the system's)."""
    hints = app.styleHints()
    if not hasattr(hints, "setColorScheme"):  # Qt before 6.8: the system's only
        return
    scheme = THEMES.get(theme)
    if scheme is None:
        hints.unsetColorScheme()
    else:
        hints.setColorScheme(scheme)
    _plots_follow_palette(app)


def is_dark(app: QApplication) -> bool:
    hints = app.styleHints()
    if hasattr(hints, "colorScheme") and hints.colorScheme() != Qt.ColorScheme.Unknown:
        return hints.colorScheme() == Qt.ColorScheme.Dark
    return app.palette().color(QPalette.Window).lightness() < 128


def _plots_follow_palette(app: QApplication) -> None:
    palette = app.palette()
    background, text = palette.color(QPalette.Base), palette.color(QPalette.Text)
    pg.setConfigOptions(
        background=background,
        foreground=text,
        antialias=False,  # thin lines over many points: aliasing is cheaper and still crisp
    )
    for top in app.topLevelWidgets():  # plots drawn already repaint in the new colours
        for view in top.findChildren(pg.GraphicsView):
            view.setBackground(background)
            for item in view.scene().items():
                if isinstance(item, pg.AxisItem):
                    item.setPen(text)
                    item.setTextPen(text)
