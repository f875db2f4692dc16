"""The run loop and what serves it: `train()` (loop.py) drives a `TrainingRun` (run.py)
through its steps (steps.py), the reward's pause-and-fix (reward_pause.py), checkpoints,
held-out evaluation, the optimiser and the memory guard."""

from core.training.loop import train
from core.training.reward_pause import build_run_reward
from core.training.run import Resume, TrainingRun, seed_everything

__all__ = ["Resume", "TrainingRun", "build_run_reward", "seed_everything", "train"]
