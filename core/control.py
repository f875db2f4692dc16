"""Pause / resume / stop for a running loop, safe to call from any thread.

The loop checks it between steps and, through the sampler (and `GenerationGate` for
generate()), between generated tokens, so a stop lands within one token's time
rather than one step's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any


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
        self._holding = threading.Event()
        self._settings_lock = threading.Lock()
        self._requested_settings: dict[str, Any] = {}
        self._held_s = 0.0  # seconds the loop has sat paused, all pauses together
        # called from the loop's thread the moment it starts to hold (between steps or
        # between two tokens), so a window can say "paused" then and not before
        self.on_hold: Callable[[], None] | None = None

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
    def holding(self) -> bool:
        """The loop is sitting in a pause now (not merely asked to pause)."""
        return self._holding.is_set()

    @property
    def held_s(self) -> float:
        """Seconds spent paused so far: a step's own duration leaves them out."""
        return self._held_s

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
        with self._settings_lock:
            self._requested_settings = {**self._requested_settings, **changes}

    def take_settings(self) -> dict[str, Any]:
        """The settings requested since the last call (the loop's), and forgets them."""
        with self._settings_lock:
            taken, self._requested_settings = self._requested_settings, {}
        return taken

    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block while paused; True once running again (or stopped)."""
        if self._running.is_set():
            return True
        started = time.monotonic()
        self._holding.set()
        if self.on_hold is not None:
            self.on_hold()
        try:
            return self._running.wait(timeout)
        finally:
            self._holding.clear()
            self._held_s += time.monotonic() - started

    def check(self) -> None:
        """Block while paused, raise Stopped if a stop was asked for."""
        self.wait_while_paused()
        if self._stop.is_set():
            raise Stopped
