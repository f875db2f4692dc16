"""The errors that mean "the user asked for something that cannot work": the CLI turns
them into one line and exit status 2; the studio shows them beside the field."""

from __future__ import annotations

from core.config import ConfigError
from core.data import DataError
from core.models import ModelError
from core.rewards import RewardConfigError, RewardError
from core.store import RunNotFound


class ExportError(ValueError):
    """An export that cannot be done (no checkpoint on disk, say)."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DataError,
    ModelError,
    RewardConfigError,
    RewardError,
    RunNotFound,
    ExportError,
)
