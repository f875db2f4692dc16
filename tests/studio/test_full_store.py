"""The window while the store's disk is full under a run: a banner says the run waits for
space, and once space is back the run goes on and ends with every step stored (issue 22
item 7). A real tmpfs that the test fills and empties."""

from __future__ import annotations

import pytest

from core.store import Store
from tests.mounts import fill, small_tmpfs
from tests.studio.helpers import live_steps, set_field

WAIT_MS = 240_000


@pytest.fixture
def disk(tmp_path):
    with small_tmpfs(tmp_path / "disk", "6m") as mounted:
        checkpoints = tmp_path / "checkpoints"  # another disk: this test is the store's
        checkpoints.mkdir()
        (mounted / "studio-checkpoints").symlink_to(checkpoints)
        yield mounted


@pytest.fixture
def db_url(disk):
    return f"sqlite:///{disk / 'studio.db'}"


def test_a_full_store_shows_a_banner_and_the_run_completes_once_space_is_back(
    window, qtbot, disk, db_url
):
    steps = 12
    for path, text in (
        ("training.steps", str(steps)),
        ("training.batch_size", "2"),
        ("generation.max_new_tokens", "4"),
        ("logging.samples_per_step", "1"),
        ("training.checkpoint_every", "0"),
    ):
        set_field(window, path, text)
    window.start_action.trigger()
    qtbot.waitUntil(lambda: live_steps(window) >= 2, timeout=WAIT_MS)
    filler = fill(disk)
    qtbot.waitUntil(lambda: window.banner_bar.isVisibleTo(window), timeout=WAIT_MS)
    assert window.banner.text().startswith(f"Store full: {db_url} has no space left")
    assert "waits for space" in window.banner.text()
    assert window.status_bar.step_label.text().startswith("Waiting for space at step")
    filler.unlink()
    qtbot.waitUntil(lambda: not window.banner_bar.isVisibleTo(window), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    assert window.status_bar.step_label.text() == f"Run {window.last_run_id} completed"
    with Store(db_url) as store:
        run = store.run(window.last_run_id)
        assert (str(run.status), run.last_step) == ("completed", steps)
        stored = store.metrics(run.id)["reward/mean"].steps.tolist()
        assert stored == list(range(1, steps + 1))
        assert [s.step for s in store.samples(run.id)] == list(range(1, steps + 1))
