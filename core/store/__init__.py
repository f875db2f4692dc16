"""The run store: runs and what they record, in SQLite by default or any SQLAlchemy database."""

from core.store.backup import MigrationError
from core.store.engine import default_db_url, error_reason, shown_url
from core.store.recorder import RunRecorder
from core.store.records import (
    LIVE,
    STORE_FULL,
    CheckpointInfo,
    LogEntry,
    MetricSeries,
    RunBusy,
    RunInfo,
    RunNotFound,
    RunStatus,
    StoreFull,
    StoreReadOnly,
    StoreUnavailable,
)
from core.store.store import Store

__all__ = [
    "LIVE",
    "STORE_FULL",
    "CheckpointInfo",
    "LogEntry",
    "MetricSeries",
    "MigrationError",
    "RunBusy",
    "RunInfo",
    "RunNotFound",
    "RunRecorder",
    "RunStatus",
    "Store",
    "StoreFull",
    "StoreReadOnly",
    "StoreUnavailable",
    "default_db_url",
    "error_reason",
    "schema_problems",
    "shown_url",
]


def schema_problems(url: str) -> str:
    """What differs between the database at `url` and the schema its migrations make (its
    revision is not the newest, or the tables differ from the models); "" when none."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from core.store.engine import alembic_config
    from core.store.schema import Base

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with Store(url) as store, store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        current = context.get_current_revision()
        differences = compare_metadata(context, Base.metadata)
    if current != head or differences:
        return f"schema {current} (expected {head}); differences: {differences}"
    return ""
