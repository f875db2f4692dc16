"""Where RL Studio keeps things on the user's machine (platformdirs), and the bundled assets."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "rlstudio"


def data_dir() -> Path:
    """Runs, checkpoints and the default database; RLSTUDIO_HOME overrides (tests, portable use)."""
    root = os.environ.get("RLSTUDIO_HOME")
    path = Path(root) / "data" if root else Path(platformdirs.user_data_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Converted models: safe to delete, rebuilt on demand. RLSTUDIO_CACHE overrides."""
    explicit, root = os.environ.get("RLSTUDIO_CACHE"), os.environ.get("RLSTUDIO_HOME")
    if explicit:
        path = Path(explicit)
    else:
        path = Path(root) / "cache" if root else Path(platformdirs.user_cache_dir(APP))
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets_dir() -> Path:
    """The repo's assets/ in a checkout, or the copy packed into the wheel as core/_assets."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_assets", here.parent / "assets"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("RL Studio's assets folder is missing from this installation")
