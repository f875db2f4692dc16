"""The run store keeps what a training run records, exactly, and stays usable while it runs."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, insert, text, update
from sqlalchemy.orm import Session

from core.store import RunNotFound, RunRecorder, RunStatus, Store, default_db_url
from core.store.schema import Base, Metric, Run


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'runs.db').as_posix()}"


@pytest.fixture
def store(db_url: str):
    opened = Store(db_url)
    yield opened
    opened.close()


def new_run(store: Store, **overrides) -> int:
    fields = {
        "name": "tiny-grpo",
        "config": {"lr": 1e-5, "group_size": 4, "reward": {"name": "length"}},
        "algorithm": "grpo",
        "model": "tiny-model",
        "seed": 7,
        "total_steps": 100,
    }
    fields.update(overrides)
    return store.create_run(**fields)


def sample(step: int, idx: int, **extra) -> dict:
    row = {
        "step": step,
        "idx": idx,
        "prompt": f"prompt {step}",
        "completion": f"completion {step}.{idx}",
        "reward": 0.5 + idx,
        "components": {"length": 0.25, "format": None},
    }
    row.update(extra)
    return row


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def force(store: Store, run_id: int, **values) -> None:
    with Session(store.engine) as session, session.begin():
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def test_new_run_is_pending_with_its_config(store: Store) -> None:
    run_id = new_run(store)
    info = store.run(run_id)
    assert info.status is RunStatus.PENDING
    assert (info.name, info.algorithm, info.model, info.seed) == (
        "tiny-grpo",
        "grpo",
        "tiny-model",
        7,
    )
    assert info.last_step == -1 and info.last_reward is None
    assert info.created_at.tzinfo is not None
    assert store.run_config(run_id) == {
        "lr": 1e-5,
        "group_size": 4,
        "reward": {"name": "length"},
    }


def test_runs_are_listed_newest_first_with_latest_reward(store: Store) -> None:
    first = new_run(store, name="first")
    second = new_run(store, name="second")
    store.add_metrics(first, [(0, 0.0, {"reward/mean": 0.1}), (5, 1.0, {"reward/mean": 0.9})])
    listed = store.runs()
    assert [r.id for r in listed] == [second, first]
    assert listed[1].last_reward == pytest.approx(0.9)
    assert listed[0].last_reward is None


def test_status_changes_stamp_start_and_finish(store: Store) -> None:
    run_id = new_run(store)
    store.set_status(run_id, RunStatus.RUNNING)
    running = store.run(run_id)
    assert running.started_at is not None and running.finished_at is None
    store.set_status(run_id, "failed", error="CUDA out of memory")
    failed = store.run(run_id)
    assert failed.status is RunStatus.FAILED
    assert f"{failed.status}" == "failed"
    assert failed.error == "CUDA out of memory"
    assert failed.finished_at is not None and failed.started_at == running.started_at

    store.claim_run(run_id)
    resumed = store.run(run_id)
    assert resumed.status is RunStatus.RUNNING
    assert resumed.finished_at is None and resumed.error is None


def test_rename_total_steps_and_heartbeat_show_up(store: Store) -> None:
    run_id = new_run(store)
    store.rename_run(run_id, "renamed")
    store.set_total_steps(run_id, 250)
    store.heartbeat(run_id, 42)
    info = store.run(run_id)
    assert (info.name, info.total_steps, info.last_step) == ("renamed", 250, 42)


def test_metrics_round_trip_in_step_order(store: Store) -> None:
    run_id = new_run(store)
    store.add_metrics(
        run_id,
        [(2, 2.5, {"loss": 0.3, "kl": 0.01}), (0, 0.5, {"loss": 0.9}), (1, 1.5, {"loss": 0.6})],
    )
    series = store.metrics(run_id)
    assert store.metric_keys(run_id) == ["kl", "loss"]
    np.testing.assert_array_equal(series["loss"].steps, [0, 1, 2])
    np.testing.assert_allclose(series["loss"].values, [0.9, 0.6, 0.3])
    np.testing.assert_allclose(series["loss"].wall_times, [0.5, 1.5, 2.5])
    assert series["loss"].steps.dtype == np.int64
    assert series["loss"].values.dtype == np.float64
    assert set(store.metrics(run_id, keys=["kl"])) == {"kl"}


def test_nan_and_infinities_round_trip_exactly(store: Store) -> None:
    run_id = new_run(store)
    store.add_metrics(
        run_id,
        [
            (0, 0.0, {"x": math.nan}),
            (1, 1.0, {"x": math.inf}),
            (2, 2.0, {"x": -math.inf}),
            (3, 3.0, {"x": 0.0}),
        ],
    )
    values = store.metrics(run_id)["x"].values
    assert math.isnan(values[0])
    assert values[1] == math.inf and values[2] == -math.inf and values[3] == 0.0


def test_rewriting_a_step_keeps_one_value(store: Store) -> None:
    run_id = new_run(store)
    store.add_metrics(run_id, [(3, 1.0, {"loss": 1.0, "kl": 0.5})])
    store.add_metrics(run_id, [(3, 2.0, {"loss": 0.25}), (3, 2.0, {"loss": 0.125})])
    series = store.metrics(run_id)
    np.testing.assert_array_equal(series["loss"].steps, [3])
    assert series["loss"].values.tolist() == [0.125]
    assert series["kl"].values.tolist() == [0.5]
    with Session(store.engine) as session:
        count = session.scalar(text("SELECT COUNT(*) FROM metrics WHERE key = 'loss'"))
    assert count == 1


def test_since_step_returns_only_new_points(store: Store) -> None:
    run_id = new_run(store)
    store.add_metrics(run_id, [(step, float(step), {"loss": step / 10}) for step in range(10)])
    new = store.metrics(run_id, since_step=6)
    np.testing.assert_array_equal(new["loss"].steps, [7, 8, 9])
    assert store.metrics(run_id, since_step=9) == {}


def test_samples_round_trip_with_token_detail(store: Store) -> None:
    run_id = new_run(store)
    store.add_samples(
        run_id,
        [
            sample(1, 1),
            sample(
                1,
                0,
                tokens=["Hel", "lo"],
                logprobs=[-0.5, math.nan],
                kl=[0.0, math.inf],
                advantages=np.array([1.0, -1.0]),
                reward=math.nan,
            ),
            sample(0, 0),
        ],
    )
    rows = store.samples(run_id)
    assert [(r.step, r.idx) for r in rows] == [(0, 0), (1, 0), (1, 1)]
    detailed = rows[1]
    assert detailed.tokens == ["Hel", "lo"]
    assert detailed.logprobs == [-0.5, None]
    assert detailed.kl == [0.0, None]
    assert detailed.advantages == [1.0, -1.0]
    assert detailed.reward is None
    assert rows[0].components == {"length": 0.25, "format": None}
    assert rows[0].tokens is None and rows[0].reward == 0.5
    assert [r.idx for r in store.samples(run_id, step=1)] == [0, 1]
    assert [(r.step, r.idx) for r in store.samples(run_id, offset=1, limit=1)] == [(1, 0)]
    assert store.sample_count(run_id) == 3 and store.sample_count(run_id, step=1) == 2


def test_checkpoints_and_resume_cleanup(store: Store) -> None:
    run_id = new_run(store)
    for step in (10, 20, 30):
        store.add_metrics(run_id, [(step, float(step), {"loss": 1.0})])
        store.add_samples(run_id, [sample(step, 0)])
        store.add_checkpoint(run_id, step, f"/ckpt/{step}")
    store.add_checkpoint(run_id, 20, "/ckpt/20-again")
    store.heartbeat(run_id, 30)
    assert [c.step for c in store.checkpoints(run_id)] == [10, 20, 30]

    store.delete_after(run_id, 20)

    assert store.last_checkpoint(run_id).path == "/ckpt/20-again"
    np.testing.assert_array_equal(store.metrics(run_id)["loss"].steps, [10, 20])
    assert [r.step for r in store.samples(run_id)] == [10, 20]
    assert store.run(run_id).last_step == 20


def test_deleting_a_run_deletes_what_it_recorded(store: Store) -> None:
    run_id = new_run(store)
    kept = new_run(store)
    for target in (run_id, kept):
        store.add_metrics(target, [(0, 0.0, {"loss": 1.0})])
        store.add_samples(target, [sample(0, 0)])
        store.add_checkpoint(target, 0, "/ckpt/0")
        store.log(target, "info", "hello")
    store.delete_run(run_id)
    with pytest.raises(RunNotFound):
        store.run(run_id)
    with Session(store.engine) as session:
        for table in ("metrics", "samples", "checkpoints", "logs"):
            left = session.scalar(text(f"SELECT COUNT(*) FROM {table} WHERE run_id = {run_id}"))
            assert left == 0, table
    assert store.logs(kept)[0].message == "hello"


def test_logs_keep_the_newest_lines_in_order(store: Store) -> None:
    run_id = new_run(store)
    for n in range(5):
        store.log(run_id, "info", f"line {n}")
    lines = store.logs(run_id, limit=3)
    assert [line.message for line in lines] == ["line 2", "line 3", "line 4"]
    assert lines[0].level == "info" and lines[0].time.tzinfo is not None


def test_unknown_run_names_its_id(store: Store, db_url: str) -> None:
    with pytest.raises(RunNotFound) as caught:
        store.run(4242)
    assert str(caught.value) == f"no run with id 4242 in {db_url}"
    assert isinstance(caught.value, KeyError)
    with pytest.raises(RunNotFound, match="4242"):
        store.add_metrics(4242, [(0, 0.0, {"loss": 1.0})])


def test_sqlite_runs_in_wal_with_foreign_keys_and_is_intact(store: Store) -> None:
    new_run(store)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_migration_builds_exactly_the_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == "0005"


def test_reopening_interrupts_runs_whose_process_died(db_url: str) -> None:
    with Store(db_url) as first:
        dead = new_run(first)
        alive = new_run(first)
        paused_dead = new_run(first)
        first.set_status(dead, RunStatus.RUNNING)
        first.set_status(alive, RunStatus.RUNNING)
        first.set_status(paused_dead, RunStatus.PAUSED)
        force(first, dead, pid=dead_pid())
        force(first, paused_dead, pid=dead_pid())

    with Store(db_url) as reopened:
        assert reopened.run(dead).status is RunStatus.INTERRUPTED
        assert reopened.run(dead).finished_at is not None
        assert reopened.run(paused_dead).status is RunStatus.INTERRUPTED
        assert reopened.run(alive).status is RunStatus.RUNNING
        assert reopened.mark_interrupted() == []


def test_runs_from_other_hosts_wait_for_a_stale_heartbeat(store: Store) -> None:
    quiet = new_run(store)
    recent = new_run(store)
    now = datetime.now(UTC)
    for run_id, beat in ((quiet, now - timedelta(minutes=11)), (recent, now)):
        store.set_status(run_id, RunStatus.RUNNING)
        force(store, run_id, hostname=f"not-{socket.gethostname()}", pid=1, heartbeat_at=beat)
    assert store.mark_interrupted() == [quiet]
    assert store.run(recent).status is RunStatus.RUNNING


def test_recorder_batches_many_calls_into_few_commits(store: Store) -> None:
    run_id = new_run(store)
    commits = []
    event.listen(store.engine, "commit", lambda connection: commits.append(1))
    with RunRecorder(store, run_id, flush_interval_s=60.0, max_pending=250) as recorder:
        for step in range(1000):
            recorder.metrics(step, step * 0.01, {"loss": 1.0 / (step + 1)})
        recorder.samples([sample(999, 0)])
        recorder.log("info", "done")
    assert len(commits) <= 5
    assert len(store.metrics(run_id)["loss"].steps) == 1000
    assert store.samples(run_id)[0].step == 999
    assert store.logs(run_id)[-1].message == "done"
    assert store.run(run_id).last_step == 999


def test_recorder_flushes_when_its_interval_passes(store: Store) -> None:
    run_id = new_run(store)
    recorder = RunRecorder(store, run_id, flush_interval_s=0.05)
    recorder.metrics(0, 0.0, {"loss": 1.0})
    assert store.metrics(run_id) == {}
    time.sleep(0.06)
    recorder.metrics(1, 1.0, {"loss": 0.5})
    assert recorder.pending == 0
    np.testing.assert_array_equal(store.metrics(run_id)["loss"].steps, [0, 1])


def test_a_second_store_reads_while_the_writer_holds_its_lock(db_url: str) -> None:
    with Store(db_url) as writer, Store(db_url) as reader:
        run_id = new_run(writer)
        writer.add_metrics(run_id, [(0, 0.0, {"loss": 1.0})])
        with Session(writer.engine) as session, session.begin():
            session.execute(
                insert(Metric),
                [{"run_id": run_id, "step": 1, "key": "loss", "value": 0.5, "wall_time": 1.0}],
            )
            started = time.monotonic()
            seen = reader.metrics(run_id)["loss"].steps.tolist()
            assert time.monotonic() - started < 1.0
            assert seen == [0]
        assert reader.metrics(run_id)["loss"].steps.tolist() == [0, 1]


def test_a_second_store_follows_a_recorder_writing_in_another_thread(db_url: str) -> None:
    with Store(db_url) as writer, Store(db_url) as reader:
        run_id = new_run(writer)
        failures: list[BaseException] = []

        def train() -> None:
            try:
                with RunRecorder(writer, run_id, flush_interval_s=0.0) as recorder:
                    for step in range(200):
                        recorder.metrics(step, step * 0.01, {"loss": 1.0, "reward/mean": 0.5})
            except BaseException as error:  # surfaced by the assertion below
                failures.append(error)

        thread = threading.Thread(target=train)
        thread.start()
        seen = -1
        while thread.is_alive():
            new = reader.metrics(run_id, since_step=seen, keys=["loss"])
            if new:
                assert new["loss"].steps[0] > seen
                seen = int(new["loss"].steps[-1])
        thread.join()
        assert failures == []
        assert reader.metrics(run_id)["loss"].steps.tolist() == list(range(200))
        assert reader.runs()[0].last_reward == 0.5


def test_default_store_lives_in_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RLSTUDIO_HOME", raising=False)
    folder = tmp_path / "user-data" / "rlstudio"
    monkeypatch.setattr("core.paths.platformdirs.user_data_dir", lambda app: str(folder))
    assert default_db_url() == f"sqlite:///{(folder / 'rlstudio.db').as_posix()}"
    with Store() as default:
        new_run(default)
    assert (folder / "rlstudio.db").is_file()


def test_store_records_this_process_as_the_owner(store: Store) -> None:
    run_id = new_run(store)
    with Session(store.engine) as session:
        pid, host = session.execute(
            text(f"SELECT pid, hostname FROM runs WHERE id = {run_id}")
        ).one()
    assert (pid, host) == (os.getpid(), socket.gethostname())
