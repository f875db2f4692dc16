"""What a window needs to show a run truly: the loop says when it holds (inside a step
too), a step's own duration leaves a pause out, and the first point comes before the
starting model's held-out evaluation."""

from __future__ import annotations

import threading

import numpy as np

from core.control import Control
from core.events import Evaluating, Metrics
from core.training.loop import train
from tests.core.helpers import tiny_config

PAUSE_S = 1.5
# a prompt set with held-out prompts (the tiny recipe's one prompt has none)
HELD_OUT = {"data.prompts": "story_openings", "data.heldout_fraction": 0.25}


def _train_steps(events) -> list[Metrics]:
    return [e for e in events if isinstance(e, Metrics) and "reward/mean" in e.values]


class PausesMidStep(Control):
    """Pauses itself at the fifth token of the step after `arm()` (as a click would land
    in the middle of generation), and resumes PAUSE_S later."""

    gates = -1

    def arm(self) -> None:
        self.gates = 0

    def wait_while_paused(self, timeout=None):
        if self.gates >= 0:
            self.gates += 1
            if self.gates == 5:
                self.gates = -1
                self.pause()
                threading.Timer(PAUSE_S, self.resume).start()
        return super().wait_while_paused(timeout)


def test_a_pause_inside_generation_holds_at_once_and_leaves_the_step_duration():
    control, held = PausesMidStep(), threading.Event()
    control.on_hold = held.set
    cfg = tiny_config({"training.steps": 3, "generation.max_new_tokens": 16})
    events = []
    for event in train(cfg, control):
        events.append(event)
        if isinstance(event, Metrics) and event.step == 1:
            control.arm()
    assert held.is_set() and not control.holding
    assert control.held_s > 0.9 * PAUSE_S
    one, two, three = _train_steps(events)
    took = two.wall_time - one.wall_time
    assert took - two.values["time/step_s"] > 0.9 * PAUSE_S
    assert two.values["time/rollout_s"] < took - 0.9 * PAUSE_S
    assert three.values["time/step_s"] <= three.wall_time - two.wall_time + 1e-6


def test_the_first_point_comes_before_the_starting_models_evaluation():
    events = list(train(tiny_config({"training.steps": 2, **HELD_OUT})))
    metrics = [e for e in events if isinstance(e, Metrics)]
    assert metrics[0].step == 1 and "reward/mean" in metrics[0].values
    first_eval = next(m for m in metrics if "eval/reward/mean" in m.values)
    assert first_eval.step == 0  # the starting model's, measured after step 1
    assert abs(first_eval.values["eval/kl"]) < 1e-6  # it is the reference itself
    evaluating = [e for e in events if isinstance(e, Evaluating)]
    assert [e.step for e in evaluating] == [0, 2]
    assert events.index(evaluating[0]) < events.index(first_eval)


def test_when_the_run_evaluates_changes_nothing_it_trains():
    def rewards(eval_every: int) -> np.ndarray:
        cfg = tiny_config({"training.steps": 4, "training.eval_every": eval_every, **HELD_OUT})
        return np.array([m.values["reward/mean"] for m in _train_steps(train(cfg))])

    np.testing.assert_array_equal(rewards(0), rewards(1))
