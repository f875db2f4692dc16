"""A store in a folder no one can write (a shared drive, a mounted backup) is read as it is:
its runs, metrics and samples; any write says in one line that it is read-only (issue 22
item 6). The folder is a real read-only mount (root writes through permission bits)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from core.cli.main import main
from core.store import Store, StoreReadOnly
from core.store.engine import choose_open_mode, sqlite_open_mode, sqlite_uri
from tests.core.helpers import TINY_RECIPE
from tests.mounts import read_only_view


@pytest.mark.parametrize(
    ("file_writable", "folder_writable", "wal_and_shm", "mode"),
    [
        (True, True, False, "rw"),
        (True, True, True, "rw"),
        (True, False, True, "rw"),  # SQLite needs to make nothing in the folder
        (True, False, False, "immutable"),  # no -wal/-shm can be made for a reader either
        (False, True, False, "ro"),  # SQLite makes the -shm a reader needs
        (False, False, True, "ro"),  # a writer elsewhere has them: read through them, live
        (False, False, False, "immutable"),  # a backup on a read-only mount
    ],
)
def test_the_open_mode_follows_what_can_be_written_beside_the_file(
    file_writable: bool, folder_writable: bool, wal_and_shm: bool, mode: str
) -> None:
    assert choose_open_mode(file_writable, folder_writable, wal_and_shm) == mode


def test_the_read_only_uri_quotes_the_path_and_asks_for_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "odd 100%?#name.db"
    assert sqlite_uri(path, "ro") == f"file:{tmp_path.as_posix()}/odd%20100%25%3F%23name.db?mode=ro"
    assert sqlite_uri(path, "immutable").endswith("name.db?mode=ro&immutable=1")
    sqlite3.connect(path).close()  # the URI opens that very file
    with sqlite3.connect(sqlite_uri(path, "immutable"), uri=True) as connection:
        assert connection.execute("PRAGMA schema_version").fetchone() == (0,)
    assert sqlite_open_mode(path) == "rw"
    assert sqlite_open_mode(tmp_path / "not there yet.db") == "rw"  # train makes it


def _recorded_store(folder: Path) -> Path:
    """A store with one finished run: three steps of metrics and two samples a step."""
    folder.mkdir()
    path = folder / "runs.db"
    with Store(f"sqlite:///{path}") as store:
        run_id = store.create_run(
            name="on the share", config={}, algorithm="ppo", model="m", seed=0, total_steps=3
        )
        for step in (1, 2, 3):
            store.write_batch(
                run_id,
                metrics=[(step, float(step), {"reward/mean": step / 10, "loss": -step})],
                samples=[
                    {"step": step, "idx": i, "prompt": "p", "completion": f"c{step}.{i}"}
                    for i in range(2)
                ],
                last_step=step,
            )
        store.set_status(run_id, "completed")
        (folder / "runs-checkpoints" / f"run-{run_id}" / "step_3").mkdir(parents=True)
    return path


def _read_back(store: Store) -> tuple:
    run = store.runs()[0]
    series = store.metrics(run.id)
    return (
        (run.name, str(run.status), run.last_step, run.last_reward),
        {key: s.values.tolist() for key, s in series.items()},
        [s.completion for s in store.samples(run.id)],
    )


def test_a_store_on_a_read_only_mount_shows_its_runs_metrics_and_samples(tmp_path: Path) -> None:
    path = _recorded_store(tmp_path / "share")
    assert not Path(f"{path}-wal").exists()  # closed cleanly: no -wal or -shm to read through
    with Store(f"sqlite:///{path}") as writable:
        expected = _read_back(writable)
    with read_only_view(path.parent, tmp_path / "mounted") as mounted:
        assert sqlite_open_mode(mounted / "runs.db") == "immutable"
        with Store(f"sqlite:///{mounted / 'runs.db'}") as store:
            assert store.read_only
            assert _read_back(store) == expected
            assert expected[0] == ("on the share", "completed", 3, pytest.approx(0.3))
            assert len(expected[2]) == 6
            with pytest.raises(StoreReadOnly, match="is read-only .*folder cannot be written"):
                store.rename_run(1, "mine now")
        assert sorted(p.name for p in mounted.iterdir()) == ["runs-checkpoints", "runs.db"]


def test_a_read_only_mount_of_a_store_being_written_follows_it_live(tmp_path: Path) -> None:
    """A trainer writes the store in its folder; a reader sees it through a read-only mount
    (its -wal and -shm are there), new rows included, as the studio polls."""
    path = _recorded_store(tmp_path / "share")
    with Store(f"sqlite:///{path}") as writer:
        writer.add_metrics(1, [(4, 4.0, {"reward/mean": 0.4})])  # opens the -wal and -shm
        with read_only_view(path.parent, tmp_path / "mounted") as mounted:
            assert sqlite_open_mode(mounted / "runs.db") == "ro"
            with Store(f"sqlite:///{mounted / 'runs.db'}") as reader:
                assert reader.read_only
                assert reader.metrics(1, since_step=3)["reward/mean"].steps.tolist() == [4]
                writer.add_metrics(1, [(5, 5.0, {"reward/mean": 0.5})])
                assert reader.metrics(1, since_step=4)["reward/mean"].steps.tolist() == [5]
                assert reader.runs()[0].last_reward == pytest.approx(0.5)


def test_the_cli_lists_a_read_only_store_and_refuses_writes_in_one_line(
    tmp_path: Path, capsys
) -> None:
    path = _recorded_store(tmp_path / "share")
    with read_only_view(path.parent, tmp_path / "mounted") as mounted:
        db = str(mounted / "runs.db")
        assert main(["runs", "--db", db]) == 0
        out = capsys.readouterr().out
        assert "on the share" in out and "3/3" in out and "0.300" in out
        assert main(["runs", "--json", "--db", db]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(r["id"], r["status"], r["last_step"]) for r in listed] == [(1, "completed", 3)]

        for argv in (
            ["train", str(TINY_RECIPE), "--steps", "1", "--db", db],
            ["delete", "1", "--yes", "--db", db],
            ["resume", "1", "--db", db],
        ):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1, err
            assert err.startswith(f"rlstudio: error: the store at sqlite:///{db} is read-only")
            assert "whether its drive is mounted read-only" in err
    # nothing was lost: the run and its checkpoint folder are still there
    with Store(f"sqlite:///{path}") as store:
        assert [r.id for r in store.runs()] == [1]
    assert (path.parent / "runs-checkpoints" / "run-1" / "step_3").is_dir()


def test_a_read_only_store_of_an_older_schema_says_it_needs_upgrading(
    tmp_path: Path, capsys
) -> None:
    path = _recorded_store(tmp_path / "share")
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0002'")
    with read_only_view(path.parent, tmp_path / "mounted") as mounted:
        assert main(["runs", "--db", str(mounted / "runs.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "is read-only and was made by an older RL Studio (schema 0002" in err
    assert "open it once where it can be written, to upgrade it" in err
