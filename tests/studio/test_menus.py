"""The menu bar, as a user reaches it: a closed panel comes back from View, the theme is
switched there and kept, and the studio reopens on the run it showed last."""

from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractButton, QApplication

from studio.theme import set_theme
from tests.studio.helpers import set_field

WAIT_MS = 120_000


def _menu(window, title: str):
    return next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == title)


def _item(menu, text: str):
    return next(a for a in menu.actions() if a.text().replace("&", "") == text)


def test_a_closed_panel_comes_back_from_the_view_menu(window, qtbot):
    dock = window.docks["samples"]
    close = dock.findChild(QAbstractButton, "qt_dockwidget_closebutton")
    close.click()
    qtbot.waitUntil(lambda: not dock.isVisible())
    _item(_menu(window, "View"), "Samples").trigger()
    assert dock.isVisible()

    window.docks["log"].close()
    window.docks["setup"].close()
    _item(_menu(window, "View"), "Reset layout").trigger()
    assert all(d.isVisible() for d in window.docks.values())


def test_the_toolbars_context_menu_lists_the_panels_not_the_banner(window):
    texts = [a.text() for a in window.createPopupMenu().actions()]
    assert "Samples" in texts and "Run" in texts
    assert "Connection" not in texts


def test_the_theme_is_switched_from_view_and_kept(window, qtbot):
    app = QApplication.instance()
    theme = _item(_menu(window, "View"), "Theme").menu()
    try:
        _item(theme, "Dark").trigger()
        assert app.palette().color(QPalette.Window).lightness() < 128
        assert window.settings.value("theme") == "dark"
        _item(theme, "Light").trigger()
        assert app.palette().color(QPalette.Window).lightness() > 128
        assert window.settings.value("theme") == "light"
    finally:
        set_theme(app, "system")


def test_reopening_the_studio_shows_the_last_run(window, qtbot, db_url):
    from studio.main_window import MainWindow

    set_field(window, "training.steps", "2")
    set_field(window, "training.batch_size", "2")
    window.start_action.trigger()
    qtbot.waitUntil(
        lambda: window.last_run_id is not None and window.live_run is None, timeout=WAIT_MS
    )
    run_id = window.last_run_id
    window.close()

    again = MainWindow(db_url=db_url)
    qtbot.addWidget(again)
    again.show()
    assert again.shown_run_id == run_id
    assert again.dashboard.curve_points("reward/mean") == 2
