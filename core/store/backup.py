"""A copy of a SQLite store next to it, written before a migration changes its schema."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine


class MigrationError(RuntimeError):
    """The database cannot be brought to this version's schema; nothing was changed."""


def sqlite_file(engine: Engine) -> Path | None:
    """The file behind a SQLite engine, or None (memory, or another database)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def backup_sqlite(path: Path, revision: str) -> Path:
    """Copies `path` to `<name>.backup-<revision>-<UTC time>` beside it and returns that path.

    sqlite3's online backup copies a consistent snapshot, WAL contents included, even while
    another process reads or writes; a plain file copy could catch a half-written page.
    A failure (a full disk, a read-only folder) removes the partial copy and raises.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.backup-{revision}-{stamp}")
    try:
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
            # a self-contained file: no -wal / -shm companions when someone opens the copy
            copy.execute("PRAGMA journal_mode=DELETE")
    except (sqlite3.Error, OSError) as exc:
        target.unlink(missing_ok=True)
        raise MigrationError(
            f"could not write a backup of {path} before upgrading its schema ({exc}); "
            "the database was left as it was. Free some disk space and open it again."
        ) from None
    return target
