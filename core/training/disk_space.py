"""A checkpoint that finds its disk full waits for space instead of ending the run.

The save itself leaves the previous checkpoints as they were (`save_checkpoint` drops its
partial copy), so waiting loses nothing: the run pauses with a message, looks for free
space every second, saves again once a checkpoint fits, and goes on from the same step.
"""

from __future__ import annotations

import errno
import shutil
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TypeVar

from core.control import Control
from core.events import Event, Log, RunState, Status
from core.store import STORE_FULL

T = TypeVar("T")
POLL_S = 1.0
MAX_RETRY_S = 30.0  # a save is tried again at least this often, room or not


def disk_full(error: BaseException, folder: Path, needed: int) -> bool:
    """Whether `error` from writing into `folder` means its disk is full: said so (ENOSPC),
    or less room left there than a checkpoint takes (torch.save says only "unexpected pos")."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return free_bytes(folder) < needed


def free_bytes(folder: Path) -> int:
    for where in (folder, *folder.parents):
        try:
            return shutil.disk_usage(where).free
        except OSError:
            continue
    return 0


def saved_when_there_is_room(
    save: Callable[[], T],
    folder: Path,
    needed: int,
    control: Control,
    step: int,
    total: int,
) -> Generator[Event, None, T | None]:
    """`save()`, tried again while it fails for want of space in `folder` (`needed` bytes:
    what a checkpoint takes). None when a stop is asked while it waits (or was asked
    before: a stopping run does not wait for space); any other error is raised as it is."""
    waited_since = None
    while True:
        try:
            saved = save()
        except Exception as error:
            if not disk_full(error, folder, needed):
                raise
            if control.stopped:
                yield Log("warning", f"{_full_message(folder, step, needed)}: not saved (stopped)")
                return None
            if waited_since is None:
                waited_since = time.monotonic()
                yield Status(RunState.PAUSED, _full_message(folder, step, needed), step, total)
            _wait_for_room(folder, needed, control)
            continue
        if waited_since is not None:
            away = time.monotonic() - waited_since
            yield Status(
                RunState.RUNNING,
                f"Resumed: the checkpoint of step {step} is saved after {away:.0f} s",
                step,
                total,
            )
        return saved


def _full_message(folder: Path, step: int, needed: int) -> str:
    return (
        f"{STORE_FULL}: no space for the checkpoint of step {step} in {folder} (it takes "
        f"about {needed / 2**20:.0f} MB, {free_bytes(folder) / 2**20:.0f} MB free); waiting "
        "for space, the previous checkpoint is kept"
    )


def _wait_for_room(folder: Path, needed: int, control: Control) -> None:
    """Until `needed` bytes are free in `folder`, a stop is asked, or `MAX_RETRY_S` passed
    (then the save is tried anyway: the estimate may be off)."""
    deadline = time.monotonic() + MAX_RETRY_S
    while time.monotonic() < deadline and free_bytes(folder) < needed and not control.stopped:
        time.sleep(POLL_S)
