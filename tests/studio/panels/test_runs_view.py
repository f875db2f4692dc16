"""The runs browser."""

from __future__ import annotations

from PySide6.QtCore import Qt


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
    view._delete(confirm=False)
    assert [r.id for r in store.runs()] == [ids[0]]
    assert view.table.rowCount() == 1
    store.close()
