"""Every test gets a private data folder (runs, databases); converted models are
shared through the user's cache so the default model is dequantized once per machine."""

from __future__ import annotations

import os

import platformdirs
import pytest

os.environ.setdefault("RLSTUDIO_CACHE", platformdirs.user_cache_dir("rlstudio"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    home = tmp_path / "rlstudio-home"
    monkeypatch.setenv("RLSTUDIO_HOME", str(home))
    return home
