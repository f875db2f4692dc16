"""The runs browser."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox


def _answer_the_question(qtbot, button: QMessageBox.StandardButton, seen: list[str]) -> None:
    """Clicks `button` of the question box the next click opens, noting its text."""

    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        qtbot.mouseClick(box.button(button), Qt.LeftButton)

    QTimer.singleShot(20, answer)


def test_runs_browser_renames_and_deletes(qtbot, tmp_path):
    from core.store import Store
    from studio.panels.runs_view import RunsView

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    ids = [
        store.create_run(
            name=f"run {i}", config={}, algorithm="ppo", model="tiny-random", seed=0, total_steps=5
        )
        for i in range(2)
    ]
    view = RunsView(store)
    qtbot.addWidget(view)
    assert view.table.rowCount() == 2
    cell = next(
        view.table.item(r, 1) for r in range(2) if view.table.item(r, 0).data(Qt.UserRole) == ids[0]
    )
    cell.setText("renamed")  # what editing the name cell does
    assert store.run(ids[0]).name == "renamed"
    view.select_ids([ids[1]])
    asked: list[str] = []
    _answer_the_question(qtbot, QMessageBox.No, asked)
    qtbot.mouseClick(view.buttons["Delete"], Qt.LeftButton)  # asks first; No keeps the run
    assert len(asked) == 1 and "'run 1'" in asked[0] and "checkpoints" in asked[0]
    assert len(store.runs()) == 2
    _answer_the_question(qtbot, QMessageBox.Yes, asked)
    qtbot.mouseClick(view.buttons["Delete"], Qt.LeftButton)
    assert len(asked) == 2
    assert [r.id for r in store.runs()] == [ids[0]]
    assert view.table.rowCount() == 1
    store.close()
