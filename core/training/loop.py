"""The training loop: `train(config, control) -> Iterator[Event]`.

A generator, so the CLI, the studio's worker thread and the tests drive the very
same code and decide themselves what to do with each event. The run's parts live in
`TrainingRun` (run.py); a step in steps.py; the reward's pause-and-fix in reward_pause.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from core.config import RunConfig
from core.control import Control, Stopped
from core.errors import TrainingDiverged
from core.events import Event, Log, RunState, Status
from core.rewards import RewardError
from core.training.reward_pause import build_run_reward
from core.training.run import RANK_SEED_STRIDE, Resume, TrainingRun, seed_everything

__all__ = ["RANK_SEED_STRIDE", "Resume", "build_run_reward", "seed_everything", "train"]


def train(
    config: RunConfig,
    control: Control | None = None,
    *,
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    progress: Callable[[str], None] | None = None,
    resume: Resume | None = None,
) -> Iterator[Event]:
    """Run RL fine-tuning and yield Status, Metrics, Samples, Checkpoint and Log events.

    Pause, resume and stop come through `control`; a stop saves a checkpoint of the last
    finished step (when `checkpoint_dir` is given) so the run can be resumed.
    """
    control = control or Control()
    resume = resume or Resume(checkpoint=resume_from)
    run = yield from TrainingRun.open(config, control, checkpoint_dir, resume, progress)
    if run is None:  # stopped while loading
        return
    run.start_reward()  # last: it needs `close`, which `finally` makes sure of
    try:
        yield from run.begin()
        while run.step < run.total:
            yield from run.control_point()
            yield from run.train_step()
            yield from run.on_cadence()
        yield from run.doctor_updates()
        yield from run.evaluate()
    except Stopped:
        yield from run.doctor_updates()
        yield from run.save_if_unsaved()
        why = run.stop_reason or "Stopped by the user"
        if run.stop_reason:
            yield Log("warning", run.stop_reason)
        yield Status(RunState.STOPPED, why, run.step, run.total)
        return
    except (RewardError, TrainingDiverged):
        # The weights are those of the last finished step: keep them so a fixed reward (or
        # safer settings) resumes. (Not with several processes: the others are not here to
        # lend their part.)
        if run.world == 1:
            yield from run.save_if_unsaved()
        raise
    finally:
        run.close()
    yield from run.save_if_unsaved()
    yield Status(RunState.COMPLETED, "Finished", run.step, run.total)
