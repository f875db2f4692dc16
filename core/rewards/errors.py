"""Errors raised by reward configuration and scoring.

Two types so callers can tell a problem the user must fix before a run starts
(``RewardConfigError``) from one that happened while scoring (``RewardError``).
"""

from __future__ import annotations


class RewardConfigError(ValueError):
    """A reward is configured wrongly: unknown kind, bad parameter, unreadable file."""


class RewardError(RuntimeError):
    """A reward failed while scoring completions.

    ``component``, ``sample_index`` and ``lineno`` are filled in where known so
    the UI can point at the failing reward, sample and line of user code.
    """

    def __init__(
        self,
        message: str,
        *,
        component: str | None = None,
        sample_index: int | None = None,
        lineno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.component = component
        self.sample_index = sample_index
        self.lineno = lineno


class RewardSignatureError(RewardError):
    """A reward function whose parameters cannot take the batch it is given: found before
    any of its code runs (the preflight's trial call turns it into a config error)."""
