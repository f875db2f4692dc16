"""Whether a checkpoint can be trusted before a run carries on from it.

A checkpoint of this version is checked against its manifest (every file there, with its
size and sha256), then its weights' and trainer state's headers are read; one of an
earlier version (no manifest) is checked by reading it, its trainer state through the
restricted unpickler. `newest_usable` walks a run's checkpoints from the newest and says
why it passed over each one it skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from core.training.checkpoint.manifest import MANIFEST, manifest_problem
from core.training.checkpoint.state import StateUnreadable, check_trainer_state, is_legacy

# folder -> (what its files looked like, the verdict): the studio's dialog, its window and
# the resume it starts ask about the same checkpoint; its files are hashed once.
_verdicts: dict[Path, tuple[tuple, str | None]] = {}
_lock = threading.Lock()


def checkpoint_problem(folder: Path) -> str | None:
    """Why the checkpoint in `folder` cannot be resumed from, or None when it can."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"its folder {folder} is gone"
    looks = _file_signature(folder)
    with _lock:
        seen = _verdicts.get(folder)
    if seen is not None and seen[0] == looks:
        return seen[1]
    problem = _problem(folder)
    with _lock:
        _verdicts[folder] = (looks, problem)
    return problem


def _file_signature(folder: Path) -> tuple:
    """Names, sizes and change times: a file written to since the last check differs."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            found.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def _problem(folder: Path) -> str | None:
    if (folder / MANIFEST).is_file() or not is_legacy(folder):
        problem = manifest_problem(folder)
        if problem:
            return problem
    problem = _weights_problem(folder / "model")
    if problem:
        return problem
    try:
        check_trainer_state(folder)
    except StateUnreadable as exc:
        return str(exc)
    return None


def _weights_problem(model_dir: Path) -> str | None:
    """Each weights file's header must read and match its length (safetensors checks)."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors")) if model_dir.is_dir() else []
    if not files:
        return "model/ holds no weights (*.safetensors)"
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as weights:
                weights.keys()
        except Exception as exc:  # safetensors' own error type says what is wrong
            size = file.stat().st_size
            return f"model/{file.name} cannot be read ({size} bytes; {type(exc).__name__}: {exc})"
    return None


def newest_usable(
    checkpoints: Iterable[tuple[int, Path]],
) -> tuple[tuple[int, Path] | None, list[tuple[int, str]]]:
    """The newest usable of `checkpoints` ((step, folder) pairs), and (step, why) for each
    newer one skipped. Folders that are gone are passed over without a
    word below the newest that is there (pruning removes the older ones)."""
    skipped: list[tuple[int, str]] = []
    present = False
    for step, folder in sorted(checkpoints, key=lambda pair: pair[0], reverse=True):
        if not Path(folder).is_dir() and present:
            continue
        problem = checkpoint_problem(folder)
        present = present or Path(folder).is_dir()
        if problem is None:
            return (step, Path(folder)), skipped
        skipped.append((step, problem))
    return None, skipped
