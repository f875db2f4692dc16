"""Settings changed while a run is paused reach the run at its next step: its length, the
optimiser's learning rate, the store (the run's settings and the change at its step); a bad
value changes nothing and the run goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.control import Control
from core.events import Log, Metrics, SettingsChanged, Status
from core.runner import run_config, start_run
from core.store import Store
from core.training.live_settings import reschedule
from core.training.optimizer import make_optimizer
from tests.core.helpers import tiny_config

OLD_LR, NEW_LR = 3e-4, 1e-3


@pytest.fixture
def store(tmp_path: Path):
    with Store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        yield store


def _run_paused_at(store: Store, step: int, changes: dict, steps: int = 8):
    """A tiny run paused after `step`; while paused, `changes` are asked for, then Resume."""
    control, events = Control(), []

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, Metrics) and event.step == step:
            control.pause()
        if isinstance(event, Status) and event.state == "paused":
            control.request_settings(changes)
            control.resume()

    cfg = tiny_config(
        {"training.steps": steps, "training.batch_size": 2, "training.checkpoint_every": 0}
    )
    run_id = start_run(cfg, store, name="live", control=control, on_event=on_event)
    return run_id, events


def test_steps_and_learning_rate_changed_while_paused_hold_from_the_next_step(store):
    changes = {"training.steps": 5, "training.learning_rate": NEW_LR}
    run_id, events = _run_paused_at(store, 2, changes)

    steps = [e.step for e in events if isinstance(e, Metrics)]
    assert steps == [1, 2, 3, 4, 5]
    assert events[-1] == Status("completed", "Finished", 5, 5)
    resumed = next(e for e in events if isinstance(e, Status) and e.message == "Resumed")
    assert resumed.total_steps == 5  # what the studio's status bar shows from then on
    lrs = store.metrics(run_id, keys=["lr"])["lr"]
    assert lrs.values.tolist() == pytest.approx([OLD_LR, OLD_LR, NEW_LR, NEW_LR, NEW_LR])
    logs = [e.message for e in events if isinstance(e, Log)]
    assert "step 2: training.steps 8 -> 5, training.learning_rate 0.0003 -> 0.001" in logs

    info = store.run(run_id)
    assert (info.total_steps, info.last_step, info.status) == (5, 5, "completed")
    stored = run_config(store, run_id)
    assert (stored.training.steps, stored.training.learning_rate) == (5, NEW_LR)
    [change] = store.setting_changes(run_id)
    assert change.step == 2
    assert change.changes == (
        ("training.steps", 8, 5),
        ("training.learning_rate", OLD_LR, NEW_LR),
    )


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"training.steps": 2}, "training.steps = 2: the run has trained 2 steps already"),
        ({"training.learning_rate": -1.0}, "training.learning_rate"),
        ({"training.batch_size": 4}, "training.batch_size cannot change when a run is resumed"),
    ],
)
def test_a_bad_change_is_refused_with_a_warning_and_the_run_goes_on(store, changes, said):
    run_id, events = _run_paused_at(store, 2, changes, steps=4)

    warnings = [e.message for e in events if isinstance(e, Log) and e.level == "warning"]
    assert len(warnings) == 1 and said in warnings[0]
    assert "step 2: settings not changed" in warnings[0]
    assert not any(isinstance(e, SettingsChanged) for e in events)
    assert [e.step for e in events if isinstance(e, Metrics)] == [1, 2, 3, 4]
    assert store.run(run_id).total_steps == 4
    assert store.setting_changes(run_id) == []


def test_kl_coefficient_and_temperature_reach_the_algorithm(store):
    changes = {"algorithm.kl_coef": 0.5, "generation.temperature": 0.7}
    run_id, _events = _run_paused_at(store, 1, changes, steps=2)

    kl_coefs = store.metrics(run_id, keys=["objective/kl_coef"])["objective/kl_coef"]
    assert kl_coefs.values[1] == pytest.approx(0.5)  # the controller starts from it
    stored = run_config(store, run_id)
    assert (stored.algorithm.kl_coef, stored.generation.temperature) == (0.5, 0.7)


def test_a_shorter_run_shortens_its_schedule_and_a_new_rate_scales_it():
    cfg = tiny_config({"training.steps": 10, "training.lr_schedule": "linear"})
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer, scheduler = make_optimizer(cfg, [{"params": [weight]}])
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(OLD_LR * 6 / 10)

    shorter = tiny_config(
        {"training.steps": 5, "training.lr_schedule": "linear", "training.learning_rate": 6e-4}
    )
    reschedule(optimizer, scheduler, shorter, OLD_LR)

    assert optimizer.param_groups[0]["lr"] == pytest.approx(6e-4 * 1 / 5)
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
