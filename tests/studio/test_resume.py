"""Resume from the runs list as a user does it: the Resume button asks which settings
change (a lower learning rate after a divergence, more steps) or, for a run whose
checkpoints are gone, whether to start it over as a new run; Delete takes the checkpoints
with the run."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialog, QLineEdit, QMessageBox

from core.cli import main as cli_main
from core.store import Store
from tests.core.helpers import TINY_RECIPE
from tests.studio.helpers import when_modal

WAIT_MS = 120_000


def _trained_run(db_url: str, steps: int = 2) -> None:
    args = ["--db", db_url, "train", str(TINY_RECIPE), "--steps", str(steps)]
    assert cli_main([*args, "--set", "training.checkpoint_every=1"]) == 0


def _answer(kind, act, seen: list) -> None:
    """When a modal `kind` opens, `act(box)` answers it; `seen` keeps what it showed."""
    when_modal(kind, lambda box: (seen.append(box), act(box)))


def _click_resume(window, qtbot, run_id: int, fill: dict[str, str], seen: list) -> None:
    def fill_and_accept(dialog):
        for key, text in fill.items():
            field = dialog.findChild(QLineEdit, key)
            field.clear()
            qtbot.keyClicks(field, text)
        qtbot.mouseClick(dialog.ok, Qt.LeftButton)

    window.runs.refresh()
    qtbot.waitUntil(lambda: window.runs.table.rowCount() >= 1, timeout=WAIT_MS)
    window.runs.select_ids([run_id])
    _answer(QDialog, fill_and_accept, seen)
    qtbot.mouseClick(window.runs.buttons["Resume"], Qt.LeftButton)


def test_resume_asks_and_carries_the_run_on_with_a_lower_learning_rate(window, qtbot, db_url):
    _trained_run(db_url)
    seen: list = []
    _click_resume(window, qtbot, 1, {"training.learning_rate": "1e-5", "training.steps": "3"}, seen)
    assert "carries on from step 2" in seen[0].intro.text()
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    with Store(db_url) as store:
        run = store.run(1)
        assert (run.status, run.last_step) == ("completed", 3)
        assert store.run_config(1)["training"]["learning_rate"] == 1e-5  # recorded on the run
        lr = store.metrics(1)["lr"]
        assert lr.values[-1] <= 1e-5 + 1e-12 < lr.values[0]  # step 3 trained at the new rate
        assert any("resumed with training.learning_rate" in e.message for e in store.logs(1))


def test_a_bad_value_is_named_in_the_dialog_which_stays_open(window, qtbot, db_url):
    _trained_run(db_url)
    seen: list = []
    shown: list = []

    def look_then_cancel():  # the dialog is still open after OK: read it, then Cancel
        dialog = seen[0]
        shown.append((dialog.problem.text(), dialog.isVisible()))
        dialog.reject()

    QTimer.singleShot(1500, look_then_cancel)
    _click_resume(window, qtbot, 1, {"training.learning_rate": "-1"}, seen)
    problem, visible = shown[0]
    assert "training.learning_rate" in problem and visible
    assert window.live_run is None  # nothing started


def test_a_run_whose_checkpoints_are_gone_starts_over_as_a_linked_run_and_delete_asks(
    window, qtbot, db_url
):
    _trained_run(db_url)
    with Store(db_url) as store:
        folder = Path(store.checkpoints(1)[-1].path).parent
    shutil.rmtree(folder)
    seen: list = []
    _click_resume(window, qtbot, 1, {}, seen)
    assert seen[0].ok.text() == "Start over as a new run"
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    with Store(db_url) as store:
        again = store.run(2)
        assert again.parent_run_id == 1 and again.status == "completed"
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2]  # the old run's history
        ckpt_dir = Path(store.checkpoints(2)[-1].path).parent
    assert ckpt_dir.is_dir()

    window.runs.refresh()
    qtbot.waitUntil(lambda: window.runs.table.rowCount() == 2, timeout=WAIT_MS)
    window.runs.select_ids([2])
    asked: list[str] = []

    def yes(box: QMessageBox) -> None:
        asked.append(box.text())
        box.button(QMessageBox.Yes).click()

    _answer(QMessageBox, yes, [])
    qtbot.mouseClick(window.runs.buttons["Delete"], Qt.LeftButton)
    assert "checkpoints" in asked[0]
    with Store(db_url) as store:
        assert [r.id for r in store.runs()] == [1]
    assert not ckpt_dir.exists()  # its checkpoints went with it


def test_resume_passes_over_a_damaged_newest_checkpoint_and_the_log_says_why(window, qtbot, db_url):
    _trained_run(db_url, steps=3)
    with Store(db_url) as store:
        newest = Path(store.checkpoints(1)[-1].path)
    weights = newest / "model" / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as fh:
        fh.truncate(size // 2)
    half = f"{size // 2} of {size} bytes"
    line = f"skipped checkpoint step 3: model/model.safetensors is truncated ({half})"
    seen: list = []
    _click_resume(window, qtbot, 1, {}, seen)
    intro = seen[0].intro.text()
    assert intro.startswith("Run 1 carries on from step 2.") and line[1:] in intro
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    assert f"[warning] {line}" in window.log.toPlainText()
    with Store(db_url) as store:
        run = store.run(1)
        assert (run.status, run.last_step) == ("completed", 3)
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2, 3]
        assert line in [e.message for e in store.logs(1)]
