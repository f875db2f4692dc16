"""The run store: runs and what they record, in SQLite by default or any SQLAlchemy database."""

from core.store.engine import default_db_url
from core.store.recorder import RunRecorder, StoreUnavailable
from core.store.records import (
    CheckpointInfo,
    LogEntry,
    MetricSeries,
    RunBusy,
    RunInfo,
    RunNotFound,
    RunStatus,
    StoreReadOnly,
)
from core.store.store import Store

__all__ = [
    "CheckpointInfo",
    "LogEntry",
    "MetricSeries",
    "RunBusy",
    "RunInfo",
    "RunNotFound",
    "RunRecorder",
    "RunStatus",
    "Store",
    "StoreReadOnly",
    "StoreUnavailable",
    "default_db_url",
]
