"""Light or dark: the system's by default, or the one chosen in View > Theme (kept in
studio.ini); the plots follow the window's palette."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
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
    """ "system", "light" or "dark" (an unknown name is the system's). The colour scheme is
    asked of the platform where it takes requests (Qt 6.8+); the palette is set as well,
    since most Linux desktops (and Fusion there) ignore the request."""
    scheme = THEMES.get(theme)
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):
        if scheme is None:
            hints.unsetColorScheme()
        else:
            hints.setColorScheme(scheme)
    if scheme == Qt.ColorScheme.Dark:
        app.setPalette(_dark_palette())
    elif scheme == Qt.ColorScheme.Light:
        app.setPalette(app.style().standardPalette())
    else:
        app.setPalette(QPalette())  # the platform's own again
    _plots_follow_palette(app)


def _dark_palette() -> QPalette:
    p = QPalette()
    window, base, text, accent = (
        QColor(53, 53, 53),
        QColor(35, 35, 35),
        QColor(230, 230, 230),
        QColor(42, 130, 218),
    )
    for role, color in (
        (QPalette.Window, window),
        (QPalette.WindowText, text),
        (QPalette.Base, base),
        (QPalette.AlternateBase, window),
        (QPalette.ToolTipBase, window),
        (QPalette.ToolTipText, text),
        (QPalette.Text, text),
        (QPalette.Button, window),
        (QPalette.ButtonText, text),
        (QPalette.BrightText, QColor(255, 80, 80)),
        (QPalette.Link, accent),
        (QPalette.Highlight, accent),
        (QPalette.HighlightedText, QColor(0, 0, 0)),
        (QPalette.PlaceholderText, QColor(140, 140, 140)),
    ):
        p.setColor(role, color)
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor(127, 127, 127))
    return p


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
