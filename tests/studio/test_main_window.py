"""The window end to end on tiny-random: the form, a live run, pause / resume / stop,
reopening the run from the store, and the error paths."""

from __future__ import annotations

import gc
import time
import weakref

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from core.store import Store
from tests.studio.helpers import live_steps, set_field

WAIT_MS = 120_000


def _start_short_run(window, qtbot, steps: int = 400) -> int:
    set_field(window, "training.steps", str(steps))
    set_field(window, "training.batch_size", "4")
    set_field(window, "logging.samples_per_step", "2")
    assert window.start_action.isEnabled(), window.config_error
    before = window.last_run_id
    window.start_action.trigger()
    # the run may even be over by then (a failing one is): wait for its row, not its thread
    qtbot.waitUntil(lambda: window.last_run_id != before, timeout=WAIT_MS)
    return window.last_run_id


def test_live_run_pause_resume_stop_and_reopen(window, qtbot, db_url):
    run_id = _start_short_run(window, qtbot)

    # Metrics arrive: points on the curves and rows in the samples table.
    qtbot.waitUntil(lambda: window.dashboard.curve_points("reward/mean") >= 2, timeout=WAIT_MS)
    assert window.samples.model.rowCount() >= 2
    assert window.samples.proxy.rowCount() == window.samples.model.rowCount()
    assert window.dashboard.curve_points("objective/kl") >= 1

    # Pause: the loop holds between two tokens or two steps, so no new step arrives.
    window.pause_action.trigger()
    assert window.pause_action.text() in ("Pausing...", "Resume")
    qtbot.waitUntil(lambda: window.pause_action.text() == "Resume", timeout=WAIT_MS)
    assert window.status_bar.step_label.text().startswith("Paused at step")
    qtbot.wait(2500)  # a step in flight when Pause was pressed may still land
    held = live_steps(window)
    qtbot.wait(2000)
    assert live_steps(window) == held
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: live_steps(window) > held, timeout=WAIT_MS)

    # Stop: the thread ends and the run is stored as stopped with its steps.
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    with Store(db_url) as store:
        info = store.run(run_id)
        assert info.status == "stopped"
        stored = store.metrics(run_id)["reward/mean"]
    live = window.live.series["reward/mean"]
    assert 0 < info.last_step < 400

    # Reopen from the runs browser: the same curve as it was drawn live.
    window.runs.refresh()
    window.runs.select_ids([run_id])
    window.runs.buttons["Open"].click()
    assert window.shown_run_id == run_id
    reopened = window.dashboard.runs[0].series["reward/mean"]
    np.testing.assert_allclose(reopened.values, live.values)
    np.testing.assert_array_equal(reopened.steps, stored.steps)
    assert window.dashboard.curve_points("reward/mean") == len(stored.steps)
    assert window.samples.model.rowCount() > 0


def test_cyclic_gc_runs_only_in_the_gui_thread(window, qtbot):
    """A collection in the training thread can free Qt objects there and deadlock, so
    automatic GC is off and the GUI thread's timer collects cycles instead."""
    assert not gc.isenabled()

    class Node:
        pass

    node = Node()
    node.me = node  # a cycle: only the cyclic GC frees it
    alive = weakref.ref(node)
    del node
    _ = [[] for _ in range(2 * gc.get_threshold()[0])]  # enough allocations to be due
    qtbot.waitUntil(lambda: alive() is None, timeout=5_000)


def test_invalid_setting_disables_start_and_says_why(window):
    assert window.start_action.isEnabled()
    set_field(window, "training.learning_rate", "-1")
    assert not window.start_action.isEnabled()
    assert "training.learning_rate" in window.config_error
    assert "must be above 0" in window.message.text()
    message = window.setup.form.fields["training.learning_rate"].message
    assert message.isVisibleTo(window) and "must be above 0" in message.text()

    set_field(window, "training.learning_rate", "abc")
    assert not window.start_action.isEnabled()
    assert "expected a number" in window.config_error

    # A cross-field rule: more minibatches than completions per step.
    set_field(window, "training.learning_rate", "3e-4")
    set_field(window, "algorithm.minibatches", "64")
    assert not window.start_action.isEnabled()
    assert "minibatches" in window.config_error
    set_field(window, "algorithm.minibatches", "2")
    assert window.start_action.isEnabled()


def _python_reward(window, code: str) -> None:
    rewards = window.rewards
    rewards.set_components([])
    rewards.add_component("python")
    rewards.editor.setPlainText(code)


def test_reward_error_shows_line_and_does_not_start(window, qtbot, db_url):
    # "Try it" on code that fails at run time: the message names the line.
    _python_reward(window, "def reward(prompt, completion):\n    return undefined_name\n")
    with qtbot.waitSignal(window.rewards.tried, timeout=WAIT_MS) as scored:
        window.rewards.try_it()
    assert scored.args == [False]
    assert "line 2" in window.rewards.result.text()
    assert "NameError" in window.rewards.result.text()
    assert window.rewards.editor.error_line == 2

    # Start with code that does not even import: no run row, the line is shown.
    _python_reward(window, "def reward(prompt, completion):\n    return (\n\n")
    window.revalidate()
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    assert "line" in window.rewards.result.text()
    assert window.rewards.editor.error_line is not None
    with Store(db_url) as store:
        assert store.runs() == []


def test_try_it_scores_typed_text_per_component(window, qtbot):
    rewards = window.rewards
    rewards.set_components([])
    rewards.add_component("length")
    _add = rewards.items[-1]
    _add.params = {"target": 3, "unit": "words"}
    rewards.try_input.setPlainText("one two three\none")
    with qtbot.waitSignal(rewards.tried, timeout=WAIT_MS) as scored:
        rewards.try_it()
        assert rewards.result.text() == "Scoring..."  # in the background: the GUI goes on
    assert scored.args == [True], rewards.result.text()
    lines = rewards.result.text().splitlines()
    assert len(lines) == 2
    assert "length" in lines[0]


def test_run_failure_shows_a_dialog_and_is_stored(window, qtbot, db_url, monkeypatch):
    import core.runner
    from core.events import Status

    def broken_train(cfg, control, **kwargs):
        yield Status("running", "Training", 0, cfg.training.steps)
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(core.runner, "train", broken_train)
    run_id = _start_short_run(window, qtbot)
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    assert "the GPU caught fire" in window.error_box.text()
    assert window.error_box.isVisible()
    with Store(db_url) as store:
        info = store.run(run_id)
    assert info.status == "failed" and "the GPU caught fire" in info.error
    window.error_box.close()
    assert window.start_action.isEnabled()  # the window stays usable


def test_closing_during_a_run_asks_then_stops_it(window, qtbot, db_url, monkeypatch):
    run_id = _start_short_run(window, qtbot)
    qtbot.waitUntil(lambda: live_steps(window) >= 1, timeout=WAIT_MS)
    asked = []

    def answer(*args, **kwargs):
        asked.append(args[1:3])
        return QMessageBox.No if len(asked) == 1 else QMessageBox.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    window.close()  # "No": the run goes on
    assert window.running and window.isVisible()
    started = time.monotonic()
    window.close()  # "Yes": stop cleanly, then close
    assert not window.running
    assert time.monotonic() - started < 60
    with Store(db_url) as store:
        assert store.run(run_id).status == "stopped"
        assert store.last_checkpoint(run_id) is not None


@pytest.mark.parametrize("count", [2])
def test_compare_overlays_runs(window, qtbot, db_url, count):
    ids = []
    for _ in range(count):
        ids.append(_start_short_run(window, qtbot, steps=2))
        qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    window.runs.refresh()
    window.runs.select_ids(ids)
    window.runs.buttons["Compare"].click()
    assert sorted(int(r.label.split(":")[0]) for r in window.dashboard.runs) == sorted(ids)
    for index in range(count):
        assert window.dashboard.curve_points("reward/mean", run_index=index) == 2


def test_loading_bar_fills_with_the_conversion_percentage(window):
    window.status_bar.loading("Converting SmolLM2-135M-Instruct.Q4_1.gguf: 45%")
    assert (window.status_bar.progress.maximum(), window.status_bar.progress.value()) == (100, 45)
    assert window.status_bar.step_label.text().endswith("45%")
    window.status_bar.loading("Loading the model...")
    assert window.status_bar.progress.maximum() == 0  # busy again: no known length
