"""Closing the window while a run trains asks first, naming the run and the step its
checkpoint keeps; No keeps it training, Yes stops it with that checkpoint."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from core.store import Store
from tests.studio.helpers import answer_the_question, set_field

WAIT_MS = 120_000


def test_closing_mid_run_names_the_run_and_its_checkpoint_step(window, qtbot, db_url):
    set_field(window, "training.steps", "400")
    set_field(window, "training.batch_size", "4")
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.last_run_id is not None, timeout=WAIT_MS)
    run_id = window.last_run_id
    qtbot.waitUntil(lambda: window.store.run(run_id).last_step >= 1, timeout=WAIT_MS)
    name = window.store.run(run_id).name

    asked: list[str] = []
    answer_the_question(qtbot, QMessageBox.No, asked)
    window.close()
    try:
        assert asked[0].startswith(f"Run {run_id} {name!r} is training (step ")
        assert "saved as stopped, with a checkpoint at the step it has reached (step " in asked[0]
    except AssertionError:
        window.stop_and_wait(120)  # else pytest-qt's own close asks, and no one answers
        raise
    assert window.running and window.isVisible()  # No: it goes on

    reached = window.store.run(run_id).last_step
    answer_the_question(qtbot, QMessageBox.Yes, asked)
    window.close()
    assert len(asked) == 2 and not window.running
    with Store(db_url) as store:
        assert str(store.run(run_id).status) == "stopped"
        assert store.last_checkpoint(run_id).step >= reached
