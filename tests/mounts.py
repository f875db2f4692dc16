"""Real filesystems for the store's tests: a read-only view of a folder (a bind mount
remounted `ro`, as a shared drive or a mounted backup is) and a small tmpfs that a test can
fill. Root can write through any permission bits, so only a mount makes these real; where
mounting is not allowed (not root, a container without CAP_SYS_ADMIN) the test is skipped
and says why."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _mount(*args: str) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command here: the test needs a real read-only or full filesystem")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        pytest.skip(
            f"mounting is not allowed here ({reason[0] if reason else 'mount failed'}): the "
            "test needs a real read-only or full filesystem (run it as root, as CI does)"
        )


def _unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextmanager
def read_only_view(folder: Path, where: Path) -> Iterator[Path]:
    """`folder` seen through `where`, a mount no one can write (root included)."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(folder), str(where))
    try:
        _mount("-o", "remount,bind,ro", str(where))
        yield where
    finally:
        _unmount(where)


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` ("4m") at `where`: a disk a test can fill and empty again."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        _unmount(where)


def fill(folder: Path) -> Path:
    """Writes a filler file in `folder` until its filesystem has no space left."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
        try:  # the last blocks a big write could not take
            while True:
                fh.write(block[:512])
        except OSError:
            pass
    return filler
