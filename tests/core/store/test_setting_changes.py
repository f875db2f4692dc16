"""Settings changed while a run went on, in the store: written through the recorder (the
run's settings and total follow), read back by step; migration 0005."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.events import SettingsChanged
from core.store import RunRecorder, Store


def _url(path: Path) -> str:
    return f"sqlite:///{path.as_posix()}"


def test_a_change_updates_the_runs_settings_and_is_kept_at_its_step(tmp_path: Path):
    with Store(_url(tmp_path / "db.sqlite")) as store:
        run = store.create_run(
            name="r",
            config={"training": {"steps": 40}},
            algorithm="ppo",
            model="m",
            seed=0,
            total_steps=40,
        )
        change = SettingsChanged(19, (("training.steps", 40, 25),), {"training": {"steps": 25}})
        with RunRecorder(store, run) as recorder:
            recorder.settings_changed(change)
        assert store.run(run).total_steps == 25
        assert store.run_config(run)["training"]["steps"] == 25
        assert store.setting_changes(run) == [SettingsChanged(19, (("training.steps", 40, 25),))]


def test_migration_0005_adds_the_table_to_a_database_of_0004(tmp_path: Path):
    from alembic import command

    from core.store.engine import alembic_config

    path = tmp_path / "old.db"
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", _url(path))
    command.upgrade(cfg, "0004")
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "setting_changes" not in tables
    with Store(_url(path)) as store:  # opening migrates to the newest
        run = store.create_run(
            name="r", config={}, algorithm="ppo", model="m", seed=0, total_steps=4
        )
        assert store.setting_changes(run) == []
