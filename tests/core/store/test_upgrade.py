"""A database made by an earlier version: it migrates on open, after a backup beside it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config

from core import __version__
from core.store import Store
from core.store import backup as backup_module
from core.store.backup import MigrationError
from core.store.engine import alembic_config


def _alembic(engine_url: str) -> Config:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", engine_url)
    return config


def _old_database(path: Path) -> str:
    """A store as version 0.1.0 left it: schema 0001, one run with a metric."""
    url = f"sqlite:///{path.as_posix()}"
    command.upgrade(_alembic(url), "0001")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO runs (id, name, status, algorithm, model, seed, config_json,"
            " total_steps, last_step, created_at) VALUES (1, 'old run', 'completed', 'ppo',"
            " 'tiny-random', 0, '{}', 2, 1, '2026-01-01 00:00:00')"
        )
        db.execute(
            "INSERT INTO metrics (run_id, step, key, value, wall_time)"
            " VALUES (1, 1, 'reward/mean', 0.5, 1.0)"
        )
    return url


def _revision(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_an_old_database_is_backed_up_then_migrated_with_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "rlstudio.db"
    url = _old_database(path)

    with Store(url) as store:
        assert store.backup is not None
        assert store.backup.parent == tmp_path
        assert store.backup.name.startswith("rlstudio.db.backup-0001-")
        old = store.run(1)
        assert (old.name, old.status.value, old.app_version) == ("old run", "completed", None)
        assert store.metrics(1, keys=["reward/mean"])["reward/mean"].values.tolist() == [0.5]
        new = store.create_run(
            name="new", config={}, algorithm="ppo", model="m", seed=0, total_steps=1
        )
        assert store.run(new).app_version == __version__
        backup = store.backup

    assert _revision(path) == "0005"
    # the copy is the database as it was: old schema, same rows, and it opens on its own
    assert _revision(backup) == "0001"
    with sqlite3.connect(backup) as db:
        assert db.execute("SELECT name FROM runs").fetchall() == [("old run",)]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with Store(url) as again:  # already current: no second backup
        assert again.backup is None
    assert len(list(tmp_path.glob("rlstudio.db.backup-*"))) == 1


def test_a_new_database_needs_no_backup(tmp_path: Path) -> None:
    with Store(f"sqlite:///{(tmp_path / 'fresh.db').as_posix()}") as store:
        assert store.backup is None
    assert list(tmp_path.glob("*.backup-*")) == []


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "rlstudio.db"
    url = _old_database(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")

    with pytest.raises(MigrationError, match=r"newer RL Studio \(schema 0099"):
        Store(url)
    assert _revision(path) == "0099"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM runs").fetchall() == [("old run",)]
    assert list(tmp_path.glob("*.backup-*")) == []


class _FullDisk:
    """sqlite3 as the backup module sees it, on a disk that fills during the copy."""

    Error = sqlite3.Error

    class _Connection:
        def __init__(self, target: Path) -> None:
            self.connection = sqlite3.connect(target)

        def backup(self, _target: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        def close(self) -> None:
            self.connection.close()

    connect = _Connection


def test_a_failed_backup_leaves_the_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rlstudio.db"
    url = _old_database(path)
    monkeypatch.setattr(backup_module, "sqlite3", _FullDisk)

    with pytest.raises(MigrationError, match="could not write a backup.*disk is full"):
        Store(url)
    assert _revision(path) == "0001"
    assert list(tmp_path.glob("*.backup-*")) == []


def test_the_cli_says_where_the_old_copy_is(tmp_path: Path, capsys) -> None:
    from core.cli.main import main

    url = _old_database(tmp_path / "rlstudio.db")
    assert main(["runs", "--db", url]) == 0
    err = capsys.readouterr().err
    assert "upgraded the database" in err and "rlstudio.db.backup-0001-" in err


def test_upgrading_keeps_every_row_and_id_and_ids_are_never_reused_after(tmp_path: Path) -> None:
    """0003 rebuilds `runs` for AUTOINCREMENT: the ids and everything the runs recorded
    survive (foreign keys are off for the rebuild, so nothing cascades), and a deleted
    run's id is not handed out again."""
    path = tmp_path / "rlstudio.db"
    url = _old_database(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO runs (id, name, status, algorithm, model, seed, config_json,"
            " total_steps, last_step, created_at) VALUES (3, 'third', 'stopped', 'grpo',"
            " 'tiny-random', 1, '{}', 5, 4, '2026-01-02 00:00:00')"
        )
        db.execute(
            "INSERT INTO samples (run_id, step, idx, prompt, completion, components_json)"
            " VALUES (3, 4, 0, 'p', 'c', '{}')"
        )
        db.execute(
            "INSERT INTO checkpoints (run_id, step, path, created_at)"
            " VALUES (3, 4, '/x', '2026-01-02 00:00:00')"
        )
        db.execute(
            "INSERT INTO logs (run_id, time, level, message)"
            " VALUES (3, '2026-01-02 00:00:00', 'info', 'hello')"
        )

    with Store(url) as store:
        assert [r.id for r in store.runs()] == [3, 1]
        assert store.metrics(1)["reward/mean"].values.tolist() == [0.5]
        assert store.sample_count(3) == 1
        assert [c.step for c in store.checkpoints(3)] == [4]
        assert [e.message for e in store.logs(3)] == ["hello"]
        assert store.run(3).parent_run_id is None
        store.delete_run(3)
        new = store.create_run(
            name="new", config={}, algorithm="ppo", model="m", seed=0, total_steps=1
        )
        assert new == 4  # not 3 again
    with sqlite3.connect(path) as db:
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
        assert "AUTOINCREMENT" in sql
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM metrics").fetchone() == (1,)
