"""Numbers training cannot use stop the run with a message instead of passing silently:
updates skipped in a row for a loss that is not finite (rewards of 1e30 with clipping off),
and a weighted total reward that is not finite (tiny-random, a real SQLite store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli.main import main
from core.control import Control
from core.errors import TrainingDiverged
from core.events import RewardFailure, Status
from core.rewards import RewardError
from core.runner import start_run
from core.store import RunStatus, Store
from tests.core.helpers import TINY_RECIPE, tiny_config

SCORES = """
def reward(prompts, completions, **columns):
    return [SCORE] * len(completions)
"""


def reward_file(tmp_path: Path, score: str) -> Path:
    path = tmp_path / "scale.py"
    path.write_text(SCORES.replace("SCORE", score))
    return path


def settings(reward: Path, weight: float = 1.0, **overrides) -> dict:
    return {
        "training.steps": 8,
        "training.batch_size": 2,
        "training.checkpoint_every": 0,
        "reward.components": [
            {"kind": "python", "name": "scale", "weight": weight, "params": {"path": str(reward)}}
        ],
        **overrides,
    }


def test_rewards_of_1e30_without_clipping_stop_the_run_after_3_skipped_updates(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    huge = reward_file(tmp_path, "1e30")
    overrides = settings(huge, **{"algorithm.reward_clip": 0, "training.max_skipped_updates": 3})
    with Store(db) as store, pytest.raises(TrainingDiverged) as stopped:
        start_run(tiny_config(overrides), store, name="huge")
    message = str(stopped.value)
    assert message.startswith("training stopped at step 3: the last 3 updates were all skipped")
    assert "the model is unchanged since step 0; lower training.learning_rate" in message
    with Store(db) as store:
        [run] = store.runs()
        assert (run.status, run.last_step) == (RunStatus.FAILED, 3)
        assert run.error == f"TrainingDiverged: {message}"
        skipped = store.metrics(run.id)["loss/skipped_nonfinite"]
        assert skipped.steps.tolist() == [1, 2, 3] and skipped.values[-1] >= 3
        assert store.last_checkpoint(run.id).step == 3  # the unchanged model, to resume from


def test_the_cli_says_why_in_one_line(tmp_path, capsys):
    huge = reward_file(tmp_path, "1e30")
    sets = [
        "algorithm.reward_clip=0",
        "training.max_skipped_updates=2",
        "training.steps=4",
        "training.batch_size=2",
        f'reward.components=[{{kind="python", params={{path="{huge}"}}}}]',
    ]
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    code = main(["--db", db, "train", str(TINY_RECIPE), *(a for s in sets for a in ("--set", s))])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "UserWarning" not in err
    assert err.splitlines()[-1].startswith(
        "rlstudio: error: training stopped at step 2: the last 2 updates were all skipped"
    )


def test_clipped_rewards_of_1e30_train_on(tmp_path):
    """Clipping (the default) keeps them finite: no update is skipped, the run completes."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    overrides = settings(reward_file(tmp_path, "1e30"), **{"training.steps": 3})
    with Store(db) as store:
        run_id = start_run(tiny_config(overrides), store, name="clipped")
        assert store.run(run_id).status == RunStatus.COMPLETED
        assert "loss/skipped_nonfinite" not in store.metrics(run_id)


def test_a_weighted_total_that_is_not_finite_is_a_reward_error_naming_it(tmp_path):
    """Weight 10 on a reward of 1e308: inf. The run pauses on it as on any reward error."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    overrides = settings(reward_file(tmp_path, "1e308"), weight=10.0, **{"training.steps": 2})
    control = Control(pause_on_reward_error=True)
    events = []

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, Status) and event.state == "paused":
            control.stop()

    with Store(db) as store:
        run_id = start_run(
            tiny_config(overrides), store, name="inf", control=control, on_event=on_event
        )
        assert store.run(run_id).status == RunStatus.STOPPED
        assert "reward/mean" not in store.metrics(run_id)  # no inf stored
    [failure] = [e for e in events if isinstance(e, RewardFailure)]
    assert (failure.step, failure.component, failure.sample_index) == (1, "scale", 0)
    assert failure.message == (
        "reward 'scale': weight 10 x score 1e+308 for sample 0 makes the total reward inf, "
        "past the 3.4e+38 training can hold; scale the reward or its weight down"
    )
    with Store(db) as store, pytest.raises(RewardError, match="makes the total reward inf"):
        start_run(tiny_config(overrides), store, name="inf, no pause")
