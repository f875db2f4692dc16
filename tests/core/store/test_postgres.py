"""The store on a real PostgreSQL server: a throwaway one this module starts (loopback, its
own data folder; as `nobody` when the tests run as root, since initdb refuses root).

CI installs Debian's `postgresql` package when it is missing (.ci/run); without the
server binaries these tests are skipped, saying so.
"""

from __future__ import annotations

import functools
import threading
import time

import pytest
from sqlalchemy import exc as sa_exc

from core.control import Control
from core.events import Metrics
from core.store import RunRecorder, RunStatus, Store
from tests.postgres_server import free_port, running_server

psycopg = pytest.importorskip("psycopg", reason='psycopg missing: pip install ".[postgres]"')


@pytest.fixture(scope="module")
def postgres():
    yield from running_server()


def test_the_migrations_run_on_postgres_and_a_second_open_finds_the_schema_current(postgres):
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from core.store.engine import MIGRATIONS_DIR

    with Store(postgres.url) as store:
        run_id = store.create_run(
            name="pg", config={"a": 1}, algorithm="ppo", model="m", seed=0, total_steps=2
        )
        store.add_metrics(run_id, [(1, 0.5, {"reward/mean": 0.25, "x": float("nan")})])
        with store.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert current == head
    with Store(postgres.url) as again:  # upgrading an up-to-date database changes nothing
        assert again.run(run_id).last_reward == 0.25
        assert str(again.metrics(run_id)["x"].values[0]) == "nan"
        again.delete_run(run_id)


@pytest.mark.slow  # a real run with the server stopped and started again: a minute or two
def test_a_run_on_postgres_is_live_to_a_reader_and_survives_a_server_restart(
    postgres, tmp_path, monkeypatch
):
    """Steps 4-10 happen while the server is down: their rows wait (in memory, then in
    a spill file past 50 rows) and reach the server once it is back. None is lost."""
    from core.runner import start_run
    from tests.core.helpers import tiny_config

    spill = tmp_path / "spill"
    monkeypatch.setattr(
        "core.runner.RunRecorder",
        functools.partial(
            RunRecorder,
            max_buffered=50,
            retry_interval_s=0.2,
            max_retry_interval_s=1.0,
            spill_dir=spill,
        ),
    )
    steps, down_at, up_at = 14, 4, 10
    cfg = tiny_config(
        {"training.steps": steps, "training.checkpoint_every": 2, "logging.samples_per_step": 2}
    )
    reader = Store(postgres.url)
    writer = Store(postgres.url)
    gates = {down_at: threading.Event(), up_at: threading.Event()}
    asked = {down_at: threading.Event(), up_at: threading.Event()}
    live_seen: list[int] = []
    failures: list[BaseException] = []

    def on_event(event) -> None:
        if isinstance(event, Metrics) and event.step in gates:
            asked[event.step].set()
            assert gates[event.step].wait(60)

    def train() -> None:
        try:
            start_run(cfg, writer, name="restart", control=Control(), on_event=on_event)
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=train)
    thread.start()
    try:
        assert asked[down_at].wait(300)
        # a reader sees the live run's rows before it ends (step 2's checkpoint flushed them)
        run = reader.runs()[0]
        assert run.status is RunStatus.RUNNING
        deadline = time.monotonic() + 10
        while not live_seen and time.monotonic() < deadline:
            series = reader.metrics(run.id, keys=["reward/mean"])
            live_seen = series["reward/mean"].steps.tolist() if series else []
            time.sleep(0.2)
        assert live_seen and max(live_seen) < steps
        postgres.stop()
        gates[down_at].set()
        assert asked[up_at].wait(300)
        assert any(spill.glob("*.jsonl")), "past 50 rows the queue moved to the spill file"
        postgres.start()
        gates[up_at].set()
        thread.join(300)
    finally:
        for gate in gates.values():
            gate.set()
        thread.join(60)
    assert failures == []
    run = reader.run(run.id)
    assert run.status is RunStatus.COMPLETED and run.last_step == steps
    metrics = reader.metrics(run.id)
    assert metrics, "no metrics"
    for key, series in metrics.items():
        assert series.steps.tolist() == list(range(1, steps + 1)), key
    assert reader.sample_count(run.id) == 2 * steps
    assert [c.step for c in reader.checkpoints(run.id)] == list(range(2, steps + 1, 2))
    assert any("unreachable" in line.message for line in reader.logs(run.id))
    assert not list(spill.glob("*.jsonl")), "the spill file is replayed and removed"
    reader.close()
    writer.close()


def test_the_cli_names_an_unreachable_postgres_url_in_one_line_without_its_password(capsys):
    from core.cli.main import main

    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://me:s3cret@127.0.0.1:{port}/runs"
    assert main(["runs", "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"postgresql+psycopg://me:***@127.0.0.1:{port}/runs" in err
    assert "s3cret" not in err


def _invalidated() -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError(
        "INSERT", {}, OSError("server closed the connection"), connection_invalidated=True
    )


def test_the_recorder_keeps_rows_in_order_through_an_outage_and_spills_past_its_bound(
    tmp_path, monkeypatch
):
    """No server needed: the store's writes fail as a lost connection does for a while."""
    with Store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        run_id = store.create_run(
            name="r", config={}, algorithm="ppo", model="m", seed=0, total_steps=100
        )
        real = store.write_batch
        down = {"on": False}

        def write_batch(*args, **kwargs):
            if down["on"]:
                raise _invalidated()
            return real(*args, **kwargs)

        monkeypatch.setattr(store, "write_batch", write_batch)
        recorder = RunRecorder(
            store, run_id, flush_interval_s=0.0, max_buffered=20, retry_interval_s=0.0,
            spill_dir=tmp_path / "spill",
        )  # fmt: skip
        recorder.metrics(1, 0.1, {"a": 1.0})
        down["on"] = True
        for step in range(2, 60):
            recorder.metrics(step, step * 0.1, {"a": float(step), "b": float("nan")})
        recorder.log("info", "while down")
        assert recorder.offline and recorder.pending > 0
        assert list((tmp_path / "spill").glob("*.jsonl"))
        down["on"] = False
        recorder.status(RunStatus.COMPLETED)
        recorder.close(timeout_s=5)
        assert recorder.outages == 1 and not recorder.offline and recorder.pending == 0
        series = store.metrics(run_id)
        assert series["a"].steps.tolist() == list(range(1, 60))
        assert series["b"].steps.tolist() == list(range(2, 60))
        assert store.logs(run_id)[0].message == "while down"
        assert store.run(run_id).status is RunStatus.COMPLETED
        assert not list((tmp_path / "spill").glob("*.jsonl"))

        # still down at the end: close gives up after its timeout and says where the rows are
        down["on"] = True
        recorder.metrics(60, 6.0, {"a": 60.0})
        from core.store import StoreUnavailable

        with pytest.raises(StoreUnavailable, match=r"still unreachable.*kept in .*\.jsonl"):
            recorder.close(timeout_s=0.3)
        assert recorder.pending == 1
