"""Findings in the store: written through the recorder (updated, not repeated), read back,
the worst per run, forgotten past a resumed step, gone with their run; migration 0004."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from core.events import Finding
from core.store import RunRecorder, Store


def _finding(kind="kl_runaway", severity="warning", step=3, last_step=3, **evidence) -> Finding:
    return Finding(
        kind=kind,
        severity=severity,
        step=step,
        last_step=last_step,
        evidence=evidence or {"objective/kl": 25.0},
        explanation="KL is far above its target.",
        suggestion="Lower training.learning_rate.",
    )


def _run(store: Store) -> int:
    return store.create_run(name="r", config={}, algorithm="ppo", model="m", seed=0, total_steps=10)


def test_a_finding_is_one_row_updated_as_it_grows_and_read_back(tmp_path: Path):
    url = f"sqlite:///{(tmp_path / 'db.sqlite').as_posix()}"
    with Store(url) as store:
        run = _run(store)
        with RunRecorder(store, run) as recorder:
            recorder.metrics(3, 0.1, {"objective/kl": 25.0})
            recorder.finding(_finding())
            recorder.finding(_finding("non_finite", "critical", 5, 5, **{"loss/value": math.nan}))
            recorder.finding(_finding(severity="critical", last_step=6))
        found = store.findings(run)
        assert [(f.kind, f.severity, f.step, f.last_step) for f in found] == [
            ("kl_runaway", "critical", 3, 6),
            ("non_finite", "critical", 5, 5),
        ]
        assert math.isnan(found[1].evidence["loss/value"])
        assert found[0].suggestion == "Lower training.learning_rate."
        other = _run(store)
        store.add_findings(other, [_finding("stalled", "info", 9, 9)])
        assert store.worst_findings() == {run: "critical", other: "info"}
        store.delete_after(run, 4)  # resumed from step 4: what began later is forgotten
        assert [f.kind for f in store.findings(run)] == ["kl_runaway"]
        store.delete_run(run)
        assert store.worst_findings() == {other: "info"}


def test_migration_0004_adds_the_table_to_a_database_of_0003(tmp_path: Path):
    from alembic import command

    from core.store.engine import alembic_config

    path = tmp_path / "old.db"
    url = f"sqlite:///{path.as_posix()}"
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0003")
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "findings" not in tables
    with Store(url) as store:  # opening migrates to the newest
        run = _run(store)
        store.add_findings(run, [_finding()])
        assert store.findings(run)[0].kind == "kl_runaway"
