"""The window's menu bar: File, Run, View (every panel, the toolbar, the theme, the first
layout again) and Help. A panel that was closed comes back from View."""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox

from core import __version__
from core.paths import data_dir
from studio.theme import THEMES, set_theme

THEME_KEY = "theme"


def build_menus(window: QMainWindow) -> None:
    """`window` is the MainWindow: its toolbar's actions serve the menus as well."""
    bar = window.menuBar()
    file = bar.addMenu("&File")
    file.addAction(window.toolbar.open_store_action)
    file.addAction("Save recipe as...", window.setup.save_requested.emit)
    file.addSeparator()
    quit_action = file.addAction("Quit", window.close)
    quit_action.setShortcut(QKeySequence.Quit)

    run = bar.addMenu("&Run")
    for action in (window.start_action, window.pause_action, window.stop_action):
        run.addAction(action)
    run.addAction(window.save_action)
    run.addSeparator()
    run.addAction(window.live_action)

    view = bar.addMenu("&View")
    for dock in window.docks.values():
        view.addAction(dock.toggleViewAction())
    view.addAction(window.toolbar.toggleViewAction())
    view.addSeparator()
    _theme_menu(window, view.addMenu("Theme"))
    view.addAction("Reset layout", window.reset_layout)

    help_menu = bar.addMenu("&Help")
    help_menu.addAction("About RL Studio", lambda: _about(window))


def _theme_menu(window: QMainWindow, menu) -> None:
    group = QActionGroup(menu)
    chosen = str(window.settings.value(THEME_KEY, "system"))
    for name in THEMES:
        action = QAction(name.capitalize(), menu, checkable=True)
        action.setChecked(name == chosen)
        action.triggered.connect(lambda _=False, n=name: choose_theme(window, n))
        group.addAction(action)
        menu.addAction(action)
    window.theme_actions = {a.text().lower(): a for a in group.actions()}


def choose_theme(window: QMainWindow, theme: str) -> None:
    """Switch now and remember it for the next start."""
    set_theme(QApplication.instance(), theme)
    window.settings.setValue(THEME_KEY, theme)
    window.theme_actions[theme].setChecked(True)


def _about(window: QMainWindow) -> None:
    QMessageBox.about(
        window,
        "About RL Studio",
        f"RL Studio {__version__}\n\nReinforcement-learning fine-tuning of language models.\n"
        f"Runs, models and settings live in {data_dir()}\nThe store: {window.db_url}",
    )
