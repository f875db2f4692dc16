"""The studio's "Processes" field: a run of two processes (torchrun, gloo, tiny-random),
launched from the window, followed live through the store, stopped and resumed."""

from __future__ import annotations

import pytest

from core.store import Store
from tests.studio.helpers import live_steps, set_field

pytestmark = pytest.mark.slow  # two processes that each load torch: half a minute a launch

TIMEOUT_MS = 300_000


@pytest.fixture(autouse=True)
def _bounded(monkeypatch):
    monkeypatch.setenv("RLSTUDIO_DIST_TIMEOUT_S", "120")  # a rank that dies ends the test
    monkeypatch.setenv("RLSTUDIO_DIST_BACKEND", "gloo")


def _launch(window, qtbot, steps: int) -> int:
    window.setup.processes.setValue(2)
    set_field(window, "training.steps", str(steps))
    assert window.start()
    assert window.running and not window.pause_action.isEnabled()  # no pause across processes
    qtbot.waitUntil(lambda: window._live_id() is not None, timeout=TIMEOUT_MS)
    return window._live_id()


def test_two_processes_train_and_the_window_follows_them_live(window, qtbot, db_url):
    run_id = _launch(window, qtbot, steps=6)
    qtbot.waitUntil(lambda: live_steps(window) >= 1, timeout=TIMEOUT_MS)
    seen_while_running = window.running  # curves arrived before the run ended
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT_MS)
    assert seen_while_running
    with Store(db_url) as store:
        info = store.run(run_id)
        assert (str(info.status), info.last_step) == ("completed", 6)
        stored = store.metrics(run_id)["reward/mean"]
        assert stored.steps.tolist() == [1, 2, 3, 4, 5, 6]
        assert store.sample_count(run_id) == window.samples.model.rowCount() > 0
    live = window.live.series["reward/mean"]
    assert live.steps.tolist() == [1, 2, 3, 4, 5, 6]
    assert live.values.tolist() == stored.values.tolist()
    assert window.status_bar.step_label.text() == f"Run {run_id} completed"
    log = window.log.toPlainText()
    assert "torch.distributed.run --standalone --nproc_per_node 2" in log
    assert f"[processes] run {run_id} started" in log


def test_stop_then_resume_a_run_of_two_processes(window, qtbot, db_url):
    run_id = _launch(window, qtbot, steps=500)
    qtbot.waitUntil(lambda: live_steps(window) >= 2, timeout=TIMEOUT_MS)
    window.stop()
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT_MS)
    with Store(db_url) as store:
        info = store.run(run_id)
        assert str(info.status) == "stopped"
        stopped_at = info.last_step
        assert store.checkpoints(run_id)[-1].step == stopped_at
    assert "failed" not in window.status_bar.step_label.text()

    window.resume(run_id)  # still 2 processes: `rlstudio resume` under torchrun
    qtbot.waitUntil(lambda: live_steps(window) > stopped_at, timeout=TIMEOUT_MS)
    window.stop()
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT_MS)
    with Store(db_url) as store:
        info = store.run(run_id)
        assert str(info.status) == "stopped" and info.last_step > stopped_at
        steps = store.metrics(run_id)["reward/mean"].steps.tolist()
        assert steps == list(range(1, info.last_step + 1))  # no step lost or doubled
    assert window.live.series["reward/mean"].steps.tolist()[-1] == info.last_step


def test_a_failing_launch_names_the_reason(window, qtbot, db_url, tmp_path):
    window.setup.processes.setValue(2)
    not_a_model = tmp_path / "not_a_model"  # a folder without config.json: the run says so
    not_a_model.mkdir()
    window.setup.model.setCurrentText(str(not_a_model))
    window.revalidate()
    assert window.start()
    qtbot.waitUntil(lambda: not window.running, timeout=TIMEOUT_MS)
    assert window.status_bar.step_label.text().endswith("failed")
    assert str(not_a_model) in window.message.text()
    assert "ChildFailedError" not in window.message.text()  # the CLI's reason, not torchrun's
    assert window.error_box.text() == window.message.text()
