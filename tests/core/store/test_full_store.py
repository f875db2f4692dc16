"""The recorder on a store whose disk is full: it keeps the rows, in order, says so, and
writes them all once when space is back; a spill file on that same full disk keeps nothing
twice (issue 22 item 7). A real tmpfs, filled and emptied."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.store import RunRecorder, Store, StoreFull
from tests.mounts import fill, small_tmpfs


def _sample(step: int) -> dict:
    return {"step": step, "idx": 0, "prompt": "p" * 400, "completion": "c" * 400}


def test_a_full_store_keeps_the_rows_until_space_is_back_and_writes_each_once(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk", "2m") as disk, Store(f"sqlite:///{disk / 'r.db'}") as store:
        run_id = store.create_run(
            name="r", config={}, algorithm="ppo", model="m", seed=0, total_steps=60
        )
        recorder = RunRecorder(
            store,
            run_id,
            flush_interval_s=3600,
            max_buffered=5,  # past it the rows go to a spill file: on the same full disk
            retry_interval_s=0.05,
            max_full_retry_s=0.2,
            spill_dir=disk / "spill",
        )
        recorder.metrics(0, 0.0, {"reward/mean": 0.0})
        recorder.flush()
        filler = fill(disk)
        for step in range(1, 61):  # each flush while full joins the one batch waiting
            recorder.metrics(step, float(step), {"reward/mean": step / 60, "loss": -step})
            recorder.samples([_sample(step)])
            recorder.flush()
        assert recorder.store_full and recorder.pending == 180
        assert recorder.full_message().startswith(
            f"Store full: sqlite:///{disk / 'r.db'} has no space left (database or disk is full)"
        )
        # the spill file could not be written: cut back to nothing, the rows kept in memory
        assert all(p.stat().st_size == 0 for p in (disk / "spill").glob("*"))
        with pytest.raises(StoreFull, match="free some space on its drive"):
            store.rename_run(run_id, "elsewhere")  # a write outside the recorder: one line

        started = time.monotonic()
        assert not recorder.wait_for_space(lambda: time.monotonic() - started > 1)  # gives up
        filler.unlink()
        assert recorder.wait_for_space(lambda: False)
        assert not recorder.store_full and recorder.pending == 1  # the "was full" log line
        recorder.close()

        series = store.metrics(run_id)
        assert series["reward/mean"].steps.tolist() == list(range(61))
        assert series["loss"].values.tolist() == [-s for s in range(1, 61)]
        assert [s.step for s in store.samples(run_id, limit=1000)] == list(range(1, 61))
        assert store.run(run_id).last_step == 60
        assert "the store was full for" in store.logs(run_id)[-1].message
