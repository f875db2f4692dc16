"""The window shows each state of a live run truly, and its messages leave with the state
they belong to: a pause shows as soon as the loop holds (mid-step too), a reward's failure
goes with Resume or Stop, and no message moves the layout."""

from __future__ import annotations

from core.store import Store
from tests.studio.helpers import set_field

WAIT_MS = 120_000


def _start(window, qtbot, steps: int = 200, new_tokens: int = 48) -> None:
    set_field(window, "training.steps", str(steps))
    set_field(window, "training.batch_size", "4")
    set_field(window, "generation.max_new_tokens", str(new_tokens))
    assert window.start_action.isEnabled(), window.config_error
    window.start_action.trigger()


def _log(window) -> str:
    return window.log.toPlainText()


def test_a_pause_shows_as_paused_once_the_loop_holds(window, qtbot):
    _start(window, qtbot)
    qtbot.waitUntil(lambda: window.dashboard.curve_points("reward/mean") >= 1, timeout=WAIT_MS)
    window.pause_action.trigger()  # most of a step is generation: it lands between two tokens
    qtbot.waitUntil(lambda: window.pause_action.text() == "Resume", timeout=WAIT_MS)
    assert window.status_bar.step_label.text().startswith("Paused at step")
    assert "pausing" not in window.status_bar.step_label.text()
    assert window.status_bar.eta_label.text() == "ETA: paused"
    assert "Paused" in _log(window)

    window.pause_action.trigger()  # Resume
    assert window.pause_action.text() == "Pause"
    assert _log(window).rstrip().endswith("Resumed")
    steps = window.dashboard.curve_points("reward/mean")
    qtbot.waitUntil(lambda: window.dashboard.curve_points("reward/mean") > steps, timeout=WAIT_MS)
    assert window.status_bar.step_label.text().startswith("Step ")
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)


def _failing_reward(window, flag) -> None:
    rewards = window.rewards
    rewards.set_components([])
    rewards.add_component("python")
    rewards.editor.setPlainText(
        "from pathlib import Path\n\n"
        "def reward(prompt, completion):\n"
        f"    if Path({str(flag)!r}).exists():\n"
        "        raise ValueError('the flag is up')\n"
        "    return float(len(completion))\n"
    )
    window.revalidate()


def test_a_reward_failure_message_leaves_with_resume_and_with_stop(window, qtbot, tmp_path, db_url):
    flag = tmp_path / "fail-now"
    _failing_reward(window, flag)
    _start(window, qtbot, new_tokens=8)
    qtbot.waitUntil(lambda: window.dashboard.curve_points("reward/mean") >= 1, timeout=WAIT_MS)

    flag.touch()  # the reward fails: the run pauses at the failing line
    qtbot.waitUntil(lambda: "Reward failed" in window.message.text(), timeout=WAIT_MS)
    assert window.rewards.editor.error_line == 5
    flag.unlink()  # "fixed": Resume scores the same completions again
    window.pause_action.trigger()
    assert window.message.text() == ""
    assert window.rewards.editor.error_line is None
    assert "the flag is up" not in window.rewards.result.text()

    flag.touch()
    qtbot.waitUntil(lambda: "Reward failed" in window.message.text(), timeout=WAIT_MS)
    window.stop_action.trigger()
    assert window.message.text() == ""
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    assert window.message.text() == ""
    assert window.rewards.editor.error_line is None
    with Store(db_url) as store:
        assert store.runs()[0].status == "stopped"


def test_a_long_message_stays_on_one_line_and_moves_nothing(window, qtbot):
    window.resize(1200, 800)
    qtbot.wait(50)
    toolbar_height, width = window.toolbar.height(), window.width()
    dashboard_top = window.dashboard.mapTo(window, window.dashboard.rect().topLeft()).y()
    long = "Reward failed (run paused): " + "a very long reason, " * 80
    window.toolbar.say(long)
    qtbot.wait(50)
    assert window.toolbar.height() == toolbar_height
    assert window.width() == width
    assert window.dashboard.mapTo(window, window.dashboard.rect().topLeft()).y() == dashboard_top
    assert window.message.toolTip() == long  # the whole text is a hover away
