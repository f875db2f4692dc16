"""The run store: runs and what they record, in SQLite by default or any SQLAlchemy database."""

from core.store.store import (
    CheckpointInfo,
    LogEntry,
    MetricSeries,
    RunInfo,
    RunNotFound,
    RunRecorder,
    RunStatus,
    SampleRow,
    Store,
    default_db_url,
)

__all__ = [
    "CheckpointInfo",
    "LogEntry",
    "MetricSeries",
    "RunInfo",
    "RunNotFound",
    "RunRecorder",
    "RunStatus",
    "SampleRow",
    "Store",
    "default_db_url",
]
