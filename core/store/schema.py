"""The database tables for runs and everything a run records.

The migrations (migrations/versions/) build exactly these tables; a test compares the two,
so a change here needs a new migration.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC and hands back aware UTC, so SQLite and PostgreSQL behave alike.

    SQLite has no time zones; storing every timestamp as UTC wall-clock time keeps
    comparisons and ordering correct on any backend.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base holding the store's metadata."""


class Run(Base):
    """One training run: what was asked for and where it stands."""

    __tablename__ = "runs"
    # SQLite: AUTOINCREMENT, so the id of a deleted run is never handed out again (its
    # checkpoint folder, and anything else named after it, belongs to that run alone)
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    algorithm: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    config_json: Mapped[str] = mapped_column(Text)
    total_steps: Mapped[int] = mapped_column(Integer)
    last_step: Mapped[int] = mapped_column(Integer, default=-1, server_default="-1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pid: Mapped[int | None] = mapped_column(Integer)
    hostname: Mapped[str | None] = mapped_column(String(255))
    app_version: Mapped[str | None] = mapped_column(String(32))  # None: made before 0.2.0
    # the run this one starts over (`rlstudio resume N --from-scratch`); no foreign key, so
    # deleting the old run leaves the number as a note
    parent_run_id: Mapped[int | None] = mapped_column(Integer)


class Metric(Base):
    """One scalar at one step. NaN/inf live in `special` because SQLite stores NaN as NULL."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("run_id", "step", "key", name="uq_metrics_run_step_key"),
        Index("ix_metrics_run_key_step", "run_id", "key", "step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[float | None] = mapped_column(Float)
    special: Mapped[str | None] = mapped_column(String(8))
    wall_time: Mapped[float] = mapped_column(Float)


class Sample(Base):
    """One generated completion with its reward breakdown and per-token detail."""

    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_run_step", "run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    idx: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    completion: Mapped[str] = mapped_column(Text)
    reward: Mapped[float | None] = mapped_column(Float)
    components_json: Mapped[str] = mapped_column(Text)
    tokens_json: Mapped[str | None] = mapped_column(Text)
    logprobs_json: Mapped[str | None] = mapped_column(Text)
    kl_json: Mapped[str | None] = mapped_column(Text)
    advantages_json: Mapped[str | None] = mapped_column(Text)


class Checkpoint(Base):
    """A saved training state a run can resume from."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_checkpoints_run_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogLine(Base):
    """A line of a run's log, shown in the studio next to its charts."""

    __tablename__ = "logs"
    __table_args__ = (Index("ix_logs_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)


class FindingRecord(Base):
    """A problem the run doctor found (`core.events.Finding`): one row per problem, from the
    step it began, updated as it goes on."""

    __tablename__ = "findings"
    __table_args__ = (
        UniqueConstraint("run_id", "kind", "step", name="uq_findings_run_kind_step"),
        Index("ix_findings_run_step", "run_id", "step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    last_step: Mapped[int] = mapped_column(Integer)
    evidence_json: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text)
    suggestion: Mapped[str] = mapped_column(Text)


class SettingChangeRecord(Base):
    """A setting changed while its run went on (`core.events.SettingsChanged`): one row per
    setting, at the step after which it holds."""

    __tablename__ = "setting_changes"
    __table_args__ = (Index("ix_setting_changes_run_step", "run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(255))
    old_json: Mapped[str] = mapped_column(Text)
    new_json: Mapped[str] = mapped_column(Text)
