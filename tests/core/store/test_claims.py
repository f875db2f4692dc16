"""One writer per run, ids never reused, a store that cannot be written or whose file went
away says so (issue 23), on real SQLite files."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.cli.main import main
from core.store import RunBusy, RunRecorder, RunStatus, Store, StoreReadOnly, StoreUnavailable
from core.store.records import utc_now
from core.store.schema import Run
from tests.core.helpers import TINY_RECIPE


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def store(path: Path):
    with Store(f"sqlite:///{path}") as opened:
        yield opened


def new_run(store: Store) -> int:
    return store.create_run(
        name="r", config={}, algorithm="ppo", model="tiny-random", seed=0, total_steps=3
    )


def force(store: Store, run_id: int, **values) -> None:
    with Session(store.engine) as session, session.begin():
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def test_a_run_held_by_a_live_process_cannot_be_claimed_until_it_is_gone(store: Store) -> None:
    run_id = new_run(store)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        force(store, run_id, status="running", pid=other.pid, hostname=socket.gethostname())
        with pytest.raises(RunBusy) as busy:
            store.claim_run(run_id)
        assert (
            str(busy.value)
            == f"run {run_id} is running (pid {other.pid} on {socket.gethostname()})"
        )
        force(store, run_id, status="paused")
        with pytest.raises(RunBusy, match="is paused in another process"):
            store.claim_run(run_id)
    finally:
        other.kill()
        other.wait()
    before = store.claim_run(run_id)  # its process is gone: taken over
    assert before.status == RunStatus.PAUSED
    info = store.run(run_id)
    assert info.status == RunStatus.RUNNING and info.finished_at is None


def test_another_hosts_run_is_busy_until_its_heartbeat_is_stale(store: Store) -> None:
    run_id = new_run(store)
    force(store, run_id, status="running", pid=1, hostname="elsewhere", heartbeat_at=utc_now())
    with pytest.raises(RunBusy, match=r"is running \(pid 1 on elsewhere\)"):
        store.claim_run(run_id)
    force(store, run_id, heartbeat_at=utc_now() - timedelta(minutes=11))
    store.claim_run(run_id)
    assert store.touch(run_id)  # this process holds it now
    force(store, run_id, pid=1)
    assert not store.touch(run_id)


def test_unclaim_puts_a_refused_run_back_as_it_was(store: Store) -> None:
    run_id = new_run(store)
    store.set_status(run_id, RunStatus.FAILED, error="boom")
    finished = store.run(run_id).finished_at
    claim = store.claim_run(run_id)
    store.unclaim_run(run_id, claim)
    info = store.run(run_id)
    assert (info.status, info.error, info.finished_at) == (RunStatus.FAILED, "boom", finished)


def test_a_deleted_runs_id_is_never_handed_out_again(store: Store) -> None:
    first, second = new_run(store), new_run(store)
    store.delete_run(second)
    assert new_run(store) == second + 1
    store.delete_run(first)
    assert new_run(store) == second + 2


def test_a_read_only_store_lists_its_runs_and_refuses_writes_in_one_line(
    store: Store, path: Path, capsys
) -> None:
    new_run(store)
    store.close()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    with Store(url) as read_only:
        assert [r.id for r in read_only.runs()] == [1]
        with pytest.raises(StoreReadOnly, match="is read-only .*attempt to write a readonly"):
            new_run(read_only)
    assert main(["--db", url, "runs", "--json"]) == 0
    capsys.readouterr()
    assert main(["--db", url, "train", str(TINY_RECIPE), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is read-only" in err
    assert "check the permissions of the database file and its folder" in err


@pytest.mark.parametrize("how", ["deleted", "replaced by another file"])
def test_the_recorder_notices_its_sqlite_file_went_away_and_keeps_the_rows(
    store: Store, path: Path, tmp_path: Path, how: str
) -> None:
    run_id = new_run(store)
    recorder = RunRecorder(store, run_id, flush_interval_s=3600, spill_dir=tmp_path / "spill")
    recorder.metrics(1, 0.0, {"reward/mean": 0.5})
    recorder.flush()
    assert store.file_problem() is None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how != "deleted":
        sqlite3.connect(path).close()  # a new, empty file where the store was
    recorder.metrics(2, 1.0, {"reward/mean": 0.7, "loss": 0.1})
    recorder.flush()  # no error: training goes on
    assert recorder.offline and recorder.pending == 2
    recorder.status(RunStatus.COMPLETED)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as gone:
        recorder.close()
    assert time.monotonic() - started < 5  # no waiting for a file that will not come back
    assert str(gone.value) == (
        f"the database file {path} was {how} while run {run_id} was training: the run is "
        f"not stored as finished; its last 3 rows are kept in {recorder.spill_path}"
    )
    assert len(recorder.spill_path.read_text().splitlines()) == 2  # the batch and the status
