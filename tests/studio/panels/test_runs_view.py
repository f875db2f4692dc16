"""The runs browser: deleting asks first (button, right-click menu, Delete key), a refresh
keeps the name being typed, the selection and the scroll, and Duration is training time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QAbstractItemView, QApplication, QLineEdit, QMenu, QMessageBox

from tests.studio.helpers import answer_the_question


def _make_runs(store, n: int, steps: int = 0, checkpoints: int = 0) -> list[int]:
    """`n` runs, each with `steps` recorded steps and `checkpoints` checkpoint rows."""
    ids = []
    for i in range(n):
        run_id = store.create_run(
            name=f"run {i}", config={}, algorithm="ppo", model="tiny-random", seed=0, total_steps=5
        )
        for step in range(1, steps + 1):
            store.add_metrics(run_id, [(step, float(step), {"reward/mean": 0.5})])
            store.heartbeat(run_id, step)
        for step in range(1, checkpoints + 1):
            store.add_checkpoint(run_id, step, f"/nowhere/run-{run_id}/step-{step}")
        ids.append(run_id)
    return ids


def _row_of(view, run_id: int) -> int:
    return next(
        r for r in range(view.table.rowCount()) if view.table.item(r, 0).data(Qt.UserRole) == run_id
    )


def _click_row(qtbot, view, run_id: int, modifier=Qt.NoModifier) -> None:
    rect = view.table.visualItemRect(view.table.item(_row_of(view, run_id), 0))
    qtbot.mouseClick(view.table.viewport(), Qt.LeftButton, modifier, rect.center())


@pytest.fixture
def store(tmp_path):
    from core.store import Store

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield store
    store.close()


@pytest.fixture
def view(qtbot, store):
    from studio.panels.runs_view import RunsView

    view = RunsView(store)
    qtbot.addWidget(view)
    return view


def test_runs_browser_renames_and_deletes(qtbot, store, view):
    ids = _make_runs(store, 2)
    view.refresh()
    assert view.table.rowCount() == 2
    view.table.item(_row_of(view, ids[0]), 1).setText("renamed")  # what editing the cell does
    assert store.run(ids[0]).name == "renamed"
    view.select_ids([ids[1]])
    asked: list[str] = []
    answer_the_question(qtbot, QMessageBox.No, asked)
    qtbot.mouseClick(view.buttons["Delete"], Qt.LeftButton)  # asks first; No keeps the run
    assert len(asked) == 1 and "'run 1'" in asked[0] and "checkpoints" in asked[0]
    assert len(store.runs()) == 2
    answer_the_question(qtbot, QMessageBox.Yes, asked)
    qtbot.mouseClick(view.buttons["Delete"], Qt.LeftButton)
    assert len(asked) == 2
    assert [r.id for r in store.runs()] == [ids[0]]
    assert view.table.rowCount() == 1


def test_delete_names_each_run_with_its_steps_and_checkpoints(qtbot, store, view):
    ids = _make_runs(store, 2, steps=4, checkpoints=2)
    view.refresh()
    _click_row(qtbot, view, ids[0])
    _click_row(qtbot, view, ids[1], Qt.ControlModifier)
    asked: list[str] = []
    answer_the_question(qtbot, QMessageBox.No, asked)
    qtbot.mouseClick(view.buttons["Delete"], Qt.LeftButton)
    assert asked[0].startswith("Delete 2 runs: ")
    assert f"run {ids[0]} 'run 0' (4 steps, 2 checkpoints)" in asked[0]
    assert f"run {ids[1]} 'run 1' (4 steps, 2 checkpoints)" in asked[0]
    assert "metrics, samples, logs and checkpoints" in asked[0]
    assert len(store.runs()) == 2 and view.table.rowCount() == 2


def _right_click_and_choose(qtbot, view, run_id: int, label: str) -> None:
    """A right click on the run's row, then a click on the menu's `label`."""

    def choose():
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu):
            QTimer.singleShot(20, choose)
            return
        action = next(a for a in menu.actions() if a.text() == label)
        qtbot.mouseClick(menu, Qt.LeftButton, pos=menu.actionGeometry(action).center())

    _click_row(qtbot, view, run_id)
    viewport = view.table.viewport()
    pos = view.table.visualItemRect(view.table.item(_row_of(view, run_id), 0)).center()
    QTimer.singleShot(20, choose)
    # what the platform sends on a right click (QTest's clicks skip that step)
    QApplication.sendEvent(
        viewport, QContextMenuEvent(QContextMenuEvent.Mouse, pos, viewport.mapToGlobal(pos))
    )


def test_the_right_click_menu_asks_before_deleting(qtbot, store, view):
    ids = _make_runs(store, 2, steps=3, checkpoints=1)
    view.show()
    view.refresh()
    asked: list[str] = []
    answer_the_question(qtbot, QMessageBox.No, asked)
    _right_click_and_choose(qtbot, view, ids[1], "Delete...")
    assert len(asked) == 1 and "'run 1' (3 steps, 1 checkpoint)" in asked[0]
    assert len(store.runs()) == 2 and view.table.rowCount() == 2
    answer_the_question(qtbot, QMessageBox.Yes, asked)
    _right_click_and_choose(qtbot, view, ids[1], "Delete...")
    assert len(asked) == 2
    assert [r.id for r in store.runs()] == [ids[0]] and view.table.rowCount() == 1


def _keyboard_on_the_list(qtbot, view, run_id: int) -> None:
    """The window active (a closed question box leaves it so on a desktop, not offscreen)
    and the run's row clicked."""
    view.activateWindow()
    qtbot.waitUntil(view.isActiveWindow)
    _click_row(qtbot, view, run_id)
    assert view.table.hasFocus()


def test_the_delete_key_asks_before_deleting(qtbot, store, view):
    ids = _make_runs(store, 2)
    view.show()
    view.refresh()
    _keyboard_on_the_list(qtbot, view, ids[0])
    asked: list[str] = []
    answer_the_question(qtbot, QMessageBox.No, asked)
    qtbot.keyClick(view.table, Qt.Key_Delete)
    assert len(asked) == 1 and "'run 0'" in asked[0]
    assert len(store.runs()) == 2 and view.table.rowCount() == 2
    _keyboard_on_the_list(qtbot, view, ids[0])
    answer_the_question(qtbot, QMessageBox.Yes, asked)
    qtbot.keyClick(view.table, Qt.Key_Delete)
    assert len(asked) == 2
    assert [r.id for r in store.runs()] == [ids[1]] and view.table.rowCount() == 1


def _timer_tick(qtbot, view) -> None:
    """What the refresh timer does every few seconds: a background read, then the rows."""
    view._timer.timeout.emit()
    assert view.reading
    qtbot.waitUntil(lambda: not view.reading)


def test_a_refresh_while_renaming_keeps_what_is_typed(qtbot, store, view):
    ids = _make_runs(store, 3)
    view.show()
    view.refresh()
    pos = view.table.visualItemRect(view.table.item(_row_of(view, ids[1]), 1)).center()
    # a double click: press and release, then the double-click (QTest's sends only that)
    qtbot.mouseClick(view.table.viewport(), Qt.LeftButton, pos=pos)
    qtbot.mouseDClick(view.table.viewport(), Qt.LeftButton, pos=pos)
    editor = view.table.viewport().findChild(QLineEdit)
    assert editor is not None and editor.isVisible()
    editor.selectAll()
    qtbot.keyClicks(editor, "warm ")
    _timer_tick(qtbot, view)
    view.refresh()  # and a run that starts or ends meanwhile
    qtbot.keyClicks(editor, "start")
    qtbot.keyClick(editor, Qt.Key_Return)
    qtbot.waitUntil(lambda: view.table.state() != QAbstractItemView.EditingState)  # queued
    assert store.run(ids[1]).name == "warm start"
    qtbot.waitUntil(lambda: view.table.item(_row_of(view, ids[1]), 1).text() == "warm start")


def test_a_refresh_keeps_the_selection_and_the_scroll_position(qtbot, store, view):
    ids = _make_runs(store, 40)
    view.resize(700, 300)
    view.show()
    view.refresh()
    _click_row(qtbot, view, ids[38])
    _click_row(qtbot, view, ids[37], Qt.ControlModifier)
    bar = view.table.verticalScrollBar()
    assert bar.maximum() > 10
    bar.setValue(bar.maximum())  # scrolled away from the selected runs (at the top)
    _timer_tick(qtbot, view)
    view.refresh()
    assert sorted(view.selected_ids()) == sorted([ids[37], ids[38]])
    assert bar.value() == bar.maximum()


def test_duration_counts_training_time_not_the_day_it_sat_stopped(qtbot, store):
    """Run 1 trains a step and is stopped; it is resumed 'a day later' (its start moved
    back a day in the store), to 3 steps. Duration is the seconds it trained."""
    from sqlalchemy import update

    from core import Control
    from core.events import Metrics
    from core.runner import resume_run, start_run
    from core.store.schema import Run
    from studio.panels.runs_view import COLUMNS, RunsView
    from tests.core.helpers import tiny_config

    control = Control()
    cfg = tiny_config({"training.steps": 3, "training.batch_size": 2})

    def stop_after_the_first_step(event) -> None:
        if isinstance(event, Metrics):
            control.stop()

    run_id = start_run(cfg, store, name="x", control=control, on_event=stop_after_the_first_step)
    assert str(store.run(run_id).status) == "stopped" and store.run(run_id).last_step == 1
    with store.engine.begin() as db:
        started = store.run(run_id).started_at - timedelta(days=1)
        db.execute(update(Run).where(Run.id == run_id).values(started_at=started))
    resume_run(store, run_id, control=Control())
    assert str(store.run(run_id).status) == "completed"

    trained = store.metrics(run_id)["time/update_s"].wall_times.max()
    assert 0 < trained < 3600
    view = RunsView(store)
    qtbot.addWidget(view)
    shown = view.table.item(_row_of(view, run_id), COLUMNS.index("Duration")).text()
    seconds = int(trained)
    assert shown == f"0:{seconds // 60:02d}:{seconds % 60:02d}"
