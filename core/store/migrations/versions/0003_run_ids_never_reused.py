"""Run ids are never reused (SQLite AUTOINCREMENT), and a run restarted from scratch names
the run it starts over (`parent_run_id`).

A reused id handed a new run the folder of a deleted one: its checkpoints were pruned
against the old run's. SQLite needs the table rebuilt for AUTOINCREMENT (ids, rows and the
tables that point at runs are kept; `upgrade()` in engine.py turns foreign keys off around
it, so dropping the old table cascades nothing); PostgreSQL's sequences never reuse an id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _check_foreign_keys_off() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "migration 0003 rebuilds the runs table: run it with foreign keys off "
            "(core.store.engine.upgrade does), or the rebuild would delete every metric"
        )


def upgrade() -> None:
    _check_foreign_keys_off()
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "runs",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True},
    ) as batch:
        batch.add_column(sa.Column("parent_run_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    _check_foreign_keys_off()
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("parent_run_id")
