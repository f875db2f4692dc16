"""Studio tests run the real window offscreen (pytest-qt), on tiny-random runs."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import psutil
import pytest

from tests.core.helpers import TINY_RECIPE


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'studio.db'}"


@pytest.fixture
def window(qtbot, db_url):
    from studio.main_window import MainWindow

    w = MainWindow(db_url=db_url, recipe=str(TINY_RECIPE))
    # a test that failed mid-run: stop the run before pytest-qt closes the window, or
    # closing it would ask "A run is training" with no one there to answer
    qtbot.addWidget(w, before_close_func=lambda win: win.stop_and_wait(120))
    w.show()
    yield w
    # No test may leave a training thread or a reward worker process behind.
    assert w.stop_and_wait(120), "the run did not stop"
    assert w.live_run is None
    qtbot.waitUntil(lambda: not _workers(), timeout=10_000)
    w.close()
    gc.collect()  # free this window's Qt objects here, in the GUI thread


def _workers() -> list:
    """Child processes, less multiprocessing's resource tracker (one per process, by design)."""
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(p.cmdline())
    ]
