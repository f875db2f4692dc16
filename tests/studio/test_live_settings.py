"""Settings edited while a run is paused go to the run on Resume: its length (the status
bar follows), marked on the curves live and when the run is opened later; the settings a
run cannot take mid-way are read-only while it trains."""

from __future__ import annotations

from contextlib import contextmanager

import pyqtgraph as pg
from PySide6.QtCore import Qt

from core.store import Store
from studio.panels.live_form import FIXED
from studio.panels.setting_marks import marks_on
from tests.studio.helpers import live_steps, set_field

WAIT_MS = 120_000


def _record_step_label(window) -> list[str]:
    """Every text the status bar's step label shows from now on."""
    label, shown = window.status_bar.step_label, []
    set_text = label.setText
    label.setText = lambda text: (shown.append(text), set_text(text))
    return shown


@contextmanager
def _stopped_if_it_fails(window):
    """A failed check must not leave the run paused: closing the window would then ask
    "A run is training" and wait for an answer no one gives."""
    try:
        yield
    except BaseException:
        window.stop_and_wait(120)
        raise


def _marked_steps(window) -> list[int]:
    marks = marks_on(window.dashboard).marks
    return sorted({line.change.step for _plot, line in marks if line.scene() is not None})


def test_steps_typed_while_paused_end_the_run_there(window, qtbot, db_url):
    set_field(window, "training.steps", "8")
    set_field(window, "training.batch_size", "2")
    shown = _record_step_label(window)
    window.start_action.trigger()
    window.pause_action.trigger()  # at once: the run holds before its first step
    qtbot.waitUntil(lambda: "Paused at step 0 / 8" in shown, timeout=WAIT_MS)

    batch = window.setup.form.widget_for("training.batch_size")
    with _stopped_if_it_fails(window):
        assert batch.isReadOnly() and batch.toolTip().startswith(FIXED)
        qtbot.keyClicks(batch, "9")
        assert batch.text() == "2"  # a setting the run cannot take mid-way

        steps = window.setup.form.widget_for("training.steps")
        assert not steps.isReadOnly()
        qtbot.keyClick(steps, Qt.Key_A, Qt.ControlModifier)
        qtbot.keyClicks(steps, "3")
    window.pause_action.trigger()  # Resume
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)

    run_id = window.last_run_id
    with Store(db_url) as store:
        info = store.run(run_id)
    assert (info.status, info.last_step, info.total_steps) == ("completed", 3, 3)
    assert live_steps(window) == 3
    assert [text for text in shown if text.startswith("Step")] == [
        "Step 1 / 3",
        "Step 2 / 3",
        "Step 3 / 3",
    ]
    assert _marked_steps(window) == [0]  # the change, on the live curves
    assert not batch.isReadOnly()  # the run is over: every setting is open again

    window.runs.refresh()
    window.runs.select_ids([run_id])
    window.runs.buttons["Open"].click()
    assert window.shown_run_id == run_id
    assert _marked_steps(window) == [0]  # and on the stored run's
    labels = [
        item.toPlainText()
        for _plot, line in marks_on(window.dashboard).marks
        for item in line.childItems()
        if isinstance(item, pg.InfLineLabel)
    ]
    assert labels == ["training.steps 8 -> 3"]  # said once, on the reward plot


def test_a_bad_value_typed_while_paused_is_said_kept_and_changes_nothing(window, qtbot, db_url):
    set_field(window, "training.steps", "3")
    set_field(window, "training.batch_size", "2")
    shown = _record_step_label(window)
    window.start_action.trigger()
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: "Paused at step 0 / 3" in shown, timeout=WAIT_MS)

    steps = window.setup.form.widget_for("training.steps")
    qtbot.keyClick(steps, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClicks(steps, "0")
    window.pause_action.trigger()  # Resume

    with _stopped_if_it_fails(window):
        assert "Not changed: training.steps" in window.message.text()
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    assert steps.text() == "0"  # as typed, for the user to fix
    with Store(db_url) as store:
        info = store.run(window.last_run_id)
    assert (info.status, info.last_step, info.total_steps) == ("completed", 3, 3)
    assert _marked_steps(window) == []
