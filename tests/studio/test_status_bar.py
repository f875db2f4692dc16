"""The status bar's step, ETA and memory, from the run's events."""

from __future__ import annotations

from core.events import Metrics, RunState, Status
from studio.panels.dashboard import RunSeries
from studio.status_bar import RunStatusBar, clock


def test_eta_counts_the_steps_trained_since_this_start(qtbot):
    bar = RunStatusBar()
    qtbot.addWidget(bar)
    live = RunSeries("live")  # a resumed run: steps 11.. trained now, 10 s a step
    for step in (11, 12):
        live.add(step, 10.0 * (step - 10), {"reward/mean": 0.5})
    bar.step(Metrics(12, 20.0, {"memory/peak_mb": 1234.0}), 100, live)
    assert bar.step_label.text() == "Step 12 / 100"
    assert bar.eta_label.text() == f"ETA {clock(88 * 10)} (10.0 s/step)"
    assert bar.memory_label.text() == "Memory 1,234 MB"


def test_states_show_and_the_end_clears_the_eta(qtbot):
    bar = RunStatusBar()
    qtbot.addWidget(bar)
    bar.starting("Starting...")
    assert bar.progress.isVisibleTo(bar)
    bar.status(Status(RunState.RUNNING, "Training ppo on tiny-random (cpu, float32)", 0, 5))
    assert not bar.progress.isVisibleTo(bar) and bar.device_label.text() == "cpu, float32"
    bar.status(Status(RunState.PAUSED, "Paused", 3, 5))
    assert bar.step_label.text() == "Paused at step 3 / 5"
    bar.eta_label.setText("ETA 0:10")
    bar.ended(7, RunState.STOPPED)
    assert bar.step_label.text() == "Run 7 stopped" and bar.eta_label.text() == ""
    bar.ended(None, RunState.FAILED)
    assert bar.step_label.text() == "Run failed"


def test_the_eta_after_a_pause_comes_from_the_steps_own_durations(qtbot):
    bar = RunStatusBar()
    qtbot.addWidget(bar)
    live = RunSeries("live")
    bar.starting("Starting...")
    # 3 s steps; step 3 ended 60 s after step 2 because the run sat paused for 57 s
    for step, wall in ((1, 40.0), (2, 43.0), (3, 103.0)):  # step 1 after 37 s of loading
        bar.step(Metrics(step, wall, {"reward/mean": 0.1, "time/step_s": 3.0}), 10, live)
    assert bar.eta_label.text() == f"ETA {clock(7 * 3)} (3.0 s/step)"
    bar.paused(mid_step=True)
    assert bar.step_label.text() == "Paused at step 3 / 10 (mid-step)"
    assert bar.eta_label.text() == "ETA: paused"


def test_a_held_out_evaluation_shows_a_busy_bar_until_its_figures_arrive(qtbot):
    from core.events import Evaluating

    bar = RunStatusBar()
    qtbot.addWidget(bar)
    bar.step(Metrics(1, 5.0, {"reward/mean": 0.1, "time/step_s": 2.0}), 20, RunSeries("x"))
    assert not bar.progress.isVisibleTo(bar)
    bar.evaluating(Evaluating(0, 12).prompts)
    assert bar.progress.isVisibleTo(bar) and bar.progress.maximum() == 0  # busy
    assert "evaluating on 12 held-out prompts" in bar.step_label.text()
    bar.step(Metrics(0, 30.0, {"eval/reward/mean": 0.2, "eval/kl": 0.0}), 20, RunSeries("x"))
    assert not bar.progress.isVisibleTo(bar)
    assert bar.step_label.text() == "Step 1 / 20"
