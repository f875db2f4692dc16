"""The errors that mean "the user asked for something that cannot work": the CLI turns
them into one line and exit status 2; the studio shows them beside the field."""

from __future__ import annotations

from core.config import ConfigError
from core.data import DataError
from core.lm.device import ModelError
from core.rewards import RewardConfigError, RewardError
from core.store import RunBusy, RunNotFound, StoreReadOnly
from core.store.backup import MigrationError


class RunStateError(ValueError):
    """A run that lacks what the command needs: a checkpoint on disk, held-out prompts."""


class TrainingDiverged(RunStateError):
    """Updates skipped in a row (loss or gradient not finite) past
    `training.max_skipped_updates`: the settings or the reward's scale cannot train."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    MigrationError,
    ModelError,
    RewardConfigError,
    RewardError,
    RunBusy,
    RunNotFound,
    RunStateError,
    StoreReadOnly,
)
