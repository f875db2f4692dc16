"""The window's first layout gives the curves the room: docks at their first sizes, plots
that fit the dashboard and reflow with its width, compare legends that stay short and
off the curves, and a hover read-out that never widens the window."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from core.store import Store

MIN_PLOT_HEIGHT = 150
METRICS = ("reward/mean", "reward/std", "reward/letter_e", "objective/kl", "loss/policy")


def _resize(window, width: int, height: int) -> None:
    window.resize(width, height)
    for _ in range(3):  # the resize, then the layouts it asks for
        QApplication.processEvents()


def _store_runs(db_url: str, names: list[str]) -> list[int]:
    ids = []
    with Store(db_url) as store:
        for name in names:
            run_id = store.create_run(
                name=name, config={}, algorithm="ppo", model="tiny", seed=0, total_steps=20
            )
            rows = [(s, float(s), {k: 0.1 * s for k in METRICS}) for s in range(20)]
            store.add_metrics(run_id, rows)
            ids.append(run_id)
    return ids


def _compare(window, qtbot, ids: list[int]) -> None:
    window.runs.refresh()
    window.runs.select_ids(ids)
    qtbot.mouseClick(window.runs.buttons["Compare"], Qt.LeftButton)
    QApplication.processEvents()


def _shown(widget) -> QRect:
    """The part of `widget` its parents leave in view (not what a scroll area scrolls off)."""
    shown, child = widget.rect(), widget
    while child.parentWidget() is not None:
        parent = child.parentWidget()
        shown &= QRect(widget.mapFrom(parent, QPoint(0, 0)), parent.size())
        child = parent
    return shown


def _plot_rects(dashboard) -> dict[str, QRect]:
    """Each plot's rectangle on the plots' view, in the view's coordinates."""
    view = dashboard.graphics
    return {
        title: view.mapFromScene(plot.sceneBoundingRect()).boundingRect()
        for title, plot in dashboard.plots.items()
    }


def test_the_first_layout_leaves_the_dashboard_most_of_the_window(window):
    _resize(window, 1600, 900)
    left, bottom = window.docks["setup"], window.docks["samples"]
    assert left.width() <= 440  # the form's own minimum width, no wider
    assert left.height() >= 0.8 * window.height()  # the form runs the window's height
    assert bottom.height() <= 0.3 * window.height()
    assert window.dashboard.height() >= 0.55 * window.height()


@pytest.mark.parametrize(("width", "height", "columns"), [(1024, 700, 2), (1600, 900, 3)])
def test_every_plot_fits_the_dashboard(window, width, height, columns):
    _resize(window, width, height)
    rects = _plot_rects(window.dashboard)
    shown = _shown(window.dashboard.graphics)
    for title, rect in rects.items():
        assert shown.left() <= rect.left() and rect.right() <= shown.right(), title
        assert rect.height() >= MIN_PLOT_HEIGHT, title
        if width >= 1600:  # a large window shows every plot whole, without scrolling
            assert shown.contains(rect), title
    assert len({r.left() for r in rects.values()}) == columns


def test_plots_reflow_when_the_window_is_resized(window):
    columns = []
    for width, height in ((1600, 900), (1024, 700), (1600, 900)):
        _resize(window, width, height)
        columns.append(len({r.left() for r in _plot_rects(window.dashboard).values()}))
    assert columns == [3, 2, 3]


def test_compare_legends_are_short_and_off_the_curves(window, qtbot, db_url):
    names = [f"tiny_smoke 2026-12-01 22:0{i}" for i in range(3)]
    ids = _store_runs(db_url, names)
    _resize(window, 1600, 900)
    _compare(window, qtbot, ids)
    dashboard = window.dashboard
    for title, plot in dashboard.plots.items():
        labels = [label.text for _, label in plot.legend.items]
        assert all(len(text) <= 22 and "tiny_smoke" not in text for text in labels), labels
        legend = plot.legend.sceneBoundingRect()
        assert not legend.intersects(plot.vb.sceneBoundingRect()), title
    entries = dashboard.run_legend.entries
    assert sorted(e.toolTip() for e in entries) == [f"{i}: {n}" for i, n in zip(ids, names)]
    assert all(e.width() <= 220 for e in entries)


def test_a_long_hover_read_out_never_widens_the_window(window, qtbot, db_url):
    ids = _store_runs(db_url, ["tiny_smoke " + "very long run name " * 8] * 3)
    _resize(window, 1600, 900)
    _compare(window, qtbot, ids)
    dashboard = window.dashboard
    plot = dashboard.plots["Reward"]
    centre = dashboard.graphics.mapFromScene(plot.vb.sceneBoundingRect().center())
    hint = dashboard.readout.text()
    QTest.mouseMove(dashboard.graphics.viewport(), QPoint(centre.x(), centre.y()))
    qtbot.waitUntil(lambda: dashboard.readout.text() != hint)  # the read-out is rate-limited
    QApplication.processEvents()
    assert window.width() == 1600
    assert window.minimumSizeHint().width() <= 1024
    whole = dashboard.readout.toolTip()  # what the line has no room for
    assert whole.count("reward/mean =") == 3 and len(whole) > 600
    _resize(window, 1024, 700)
    assert window.width() == 1024
