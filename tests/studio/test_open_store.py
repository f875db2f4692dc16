"""The window on another store: "Open store..." on a real PostgreSQL server, its runs live as
another process writes them, a banner while the server is down, and a clear refusal of a
store that cannot be opened."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

from core.store import RunRecorder, RunStatus, Store
from tests.postgres_server import free_port, running_server

pytest.importorskip("psycopg", reason='psycopg missing: pip install ".[postgres]"')


@pytest.fixture(scope="module")
def postgres():
    yield from running_server()


def _cell(window, run_id: int, column: int) -> str:
    table = window.runs.table
    for row in range(table.rowCount()):
        if int(table.item(row, 0).text()) == run_id:
            return table.item(row, column).text()
    raise AssertionError(f"run {run_id} is not in the runs table")


def test_open_store_shows_live_runs_and_a_banner_while_the_server_is_down(window, qtbot, postgres):
    with Store(postgres.url) as writer:  # another process's trainer, as far as the window knows
        run_id = writer.create_run(
            name="on the cluster", config={}, algorithm="grpo", model="m", seed=0, total_steps=9
        )
        writer.set_status(run_id, RunStatus.RUNNING)

        assert window.open_store(postgres.url)
        assert "127.0.0.1" in window.windowTitle() and window.db_url == postgres.url
        assert _cell(window, run_id, 1) == "on the cluster"

        # the run trains on: the table follows it at the next refresh
        with RunRecorder(writer, run_id) as recorder:
            recorder.metrics(3, 1.0, {"reward/mean": 0.25})
        window.runs.refresh()
        assert _cell(window, run_id, 5) == "3 / 9"
        assert _cell(window, run_id, 6) == "0.250"

        postgres.stop()
        try:
            window.runs.refresh()
            assert window.banner_bar.isVisibleTo(window)
            assert "Lost the connection to postgresql+psycopg://" in window.banner.text()
        finally:
            postgres.start()
        # the runs view retries on its own timer; the banner goes once the server answers
        qtbot.waitUntil(lambda: not window.banner_bar.isVisibleTo(window), timeout=30_000)
        assert _cell(window, run_id, 1) == "on the cluster"


def test_a_store_that_cannot_be_opened_is_refused_and_the_window_keeps_its_own(window, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: shown.append(text))
    before = window.db_url
    url = f"postgresql+psycopg://me:s3cret@127.0.0.1:{free_port()}/runs"  # nothing listens

    assert not window.open_store(url)
    assert window.db_url == before and window.store.url == before
    assert len(shown) == 1 and "127.0.0.1" in shown[0] and "s3cret" not in shown[0]
    window.runs.refresh()  # the old store still answers
    assert not window.banner_bar.isVisibleTo(window)


def test_open_store_takes_a_sqlite_file_path(window, tmp_path):
    path = tmp_path / "elsewhere.db"
    with Store(f"sqlite:///{path}") as other:
        run_id = other.create_run(
            name="from a file", config={}, algorithm="ppo", model="m", seed=0, total_steps=1
        )
    assert window.open_store(str(path))
    assert _cell(window, run_id, 1) == "from a file"


def test_a_slow_store_does_not_hold_up_the_window(window, qtbot, monkeypatch):
    """The runs list polls in the background: a read that hangs (a server that stopped
    answering, waiting out its connect timeout) leaves the window free meanwhile."""
    import threading

    answer = threading.Event()
    store = window.runs.store
    real_runs = store.runs
    calls = []

    def slow_runs():
        calls.append(threading.current_thread() is threading.main_thread())
        assert answer.wait(30), "the test never answered"
        raise OSError("connection timed out")

    monkeypatch.setattr(store, "runs", slow_runs)
    window.runs._refresh_if_visible()  # what the timer does every few seconds
    assert calls == [False]  # the read is under way, off the GUI thread, still waiting
    window.runs._refresh_if_visible()  # the next tick does not pile up a second read
    assert calls == [False]
    answer.set()
    qtbot.waitUntil(lambda: window.banner_bar.isVisible(), timeout=10_000)
    assert "connection timed out" in window.banner.text()
    monkeypatch.setattr(store, "runs", real_runs)
    qtbot.waitUntil(lambda: not window.runs.reading, timeout=10_000)
    window.runs._refresh_if_visible()
    qtbot.waitUntil(lambda: not window.banner_bar.isVisible(), timeout=10_000)


def test_a_store_on_a_read_only_mount_is_shown_and_says_it_cannot_be_written(
    window, qtbot, tmp_path, monkeypatch
):
    from tests.mounts import read_only_view

    share = tmp_path / "share"
    share.mkdir()
    with Store(f"sqlite:///{share / 'runs.db'}") as store:
        run_id = store.create_run(
            name="archived", config={}, algorithm="ppo", model="m", seed=0, total_steps=3
        )
        for step in (1, 2, 3):
            samples = [{"step": step, "idx": 0, "prompt": "p", "completion": f"c{step}"}]
            store.write_batch(
                run_id, metrics=[(step, 0.0, {"reward/mean": step / 4})], samples=samples
            )
        store.set_status(run_id, RunStatus.COMPLETED)
    with read_only_view(share, tmp_path / "mounted") as mounted:
        assert window.open_store(str(mounted / "runs.db"))
        assert window.banner_bar.isVisibleTo(window)
        assert "is read-only" in window.banner.text()
        assert "can be viewed, not trained" in window.banner.text()
        assert _cell(window, run_id, 1) == "archived"

        window.runs.table.selectRow(0)
        window.runs.buttons["Open"].click()
        assert window.dashboard.curve_points("reward/mean") == 3
        assert [s.completion for s in window.samples.recent(10)] == ["c1", "c2", "c3"]

        monkeypatch.setattr(QMessageBox, "question", lambda *_args: QMessageBox.Yes)
        window.runs.buttons["Delete"].click()
        assert "is read-only" in window.statusBar().currentMessage()
        assert _cell(window, run_id, 1) == "archived"

        window.start_action.trigger()
        qtbot.waitUntil(lambda: window.live_run is None, timeout=120_000)
        assert "is read-only" in window.message.text()
        window.error_box.close()
