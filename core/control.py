"""Pause / resume / stop for a running loop, safe to call from any thread.

The loop checks it between steps and, through the sampler (and `GenerationGate` for
generate()), between generated tokens, so a stop lands within one token's time
rather than one step's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

# Guards every Control's requested settings (a few dict operations: never held long).
_SETTINGS_LOCK = threading.Lock()


class Stopped(Exception):
    """Raised inside the loop when the user asked to stop; the loop ends cleanly."""


class Control:
    """``pause_on_reward_error``: when reward code fails, pause (the user fixes the code
    and resumes; the same completions are scored again) instead of ending the run."""

    def __init__(self, pause_on_reward_error: bool = False) -> None:
        self.pause_on_reward_error = pause_on_reward_error
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._save_now = threading.Event()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused loop so it can see the stop

    def request_checkpoint(self) -> None:
        self._save_now.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def take_checkpoint_request(self) -> bool:
        wanted = self._save_now.is_set()
        self._save_now.clear()
        return wanted

    def request_settings(self, changes: Mapping[str, Any]) -> None:
        """Settings for the loop to apply at its next control point, between two steps
        (`core.config.RESUMABLE_SETTINGS`, dotted keys: {"training.steps": 25}); a later
        request for the same setting wins."""
        with _SETTINGS_LOCK:
            self._requested_settings = {**getattr(self, "_requested_settings", {}), **changes}

    def take_settings(self) -> dict[str, Any]:
        """The settings requested since the last call (the loop's), and forgets them."""
        with _SETTINGS_LOCK:
            taken = getattr(self, "_requested_settings", {})
            self._requested_settings: dict[str, Any] = {}
        return taken

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block while paused; True once running again (or stopped)."""
        return self._running.wait(timeout)

    def check(self) -> None:
        """Block while paused, raise Stopped if a stop was asked for."""
        self._running.wait()
        if self._stop.is_set():
            raise Stopped
