"""Opening the database: engine creation, SQLite tuning, and the Alembic upgrade to head."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url

from core.paths import data_dir
from core.store.backup import MigrationError, backup_sqlite, sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_READ_OPTION = "rlstudio_read_only"
_OPENED_READ_ONLY = "rlstudio_opened_read_only"

# How a SQLite file is opened: for writing; `mode=ro` (SQLite reads the -wal and -shm beside
# it, or makes them); `immutable=1` (no -wal or -shm can be made, so none is used).
OpenMode = Literal["rw", "ro", "immutable"]


def default_db_url() -> str:
    """SQLite file in the user's data folder (created if missing)."""
    folder = data_dir()
    return f"sqlite:///{(folder / 'rlstudio.db').as_posix()}"


def open_engine(url: str) -> Engine:
    """An engine for `url`; a SQLite file's folder is created and its connections tuned.
    A SQLite file that cannot be written, or whose folder cannot, is opened read-only
    (`sqlite_open_mode`; `opened_read_only` tells).

    A server database's pooled connections are checked before use (a restarted server
    costs no failed query) and, for PostgreSQL, a connection attempt gives up after 10 s
    unless the URL says otherwise (`?connect_timeout=N`)."""
    parsed = make_url(url)
    options: dict[str, Any] = {}
    mode: OpenMode = "rw"
    if parsed.get_backend_name() == "sqlite" and _plain_file(parsed.database):
        path = Path(parsed.database)
        mode = sqlite_open_mode(path)
        if mode == "rw":
            path.parent.mkdir(parents=True, exist_ok=True)
        else:  # the URL stays the file's; only the connections are opened read-only
            options["creator"] = lambda: sqlite3.connect(
                sqlite_uri(path, mode), uri=True, check_same_thread=False
            )
    if parsed.get_backend_name() != "sqlite":
        options["pool_pre_ping"] = True
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": 10}
    engine = create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, writes=mode == "rw")
    return engine if mode == "rw" else engine.execution_options(**{_OPENED_READ_ONLY: mode})


def _plain_file(database: str | None) -> bool:
    """A path, not memory and not a `file:` URI the user wrote themselves."""
    return database not in (None, "", ":memory:") and not database.startswith("file:")


def choose_open_mode(file_writable: bool, folder_writable: bool, wal_and_shm: bool) -> OpenMode:
    """How to open a SQLite file in WAL mode, from what may be written beside it.

    Writing needs the file and its -wal and -shm, which SQLite makes in the folder unless
    they are there already. Reading needs the -shm (and -wal) too: either they exist (a
    writer elsewhere has them open, or left them) or the folder lets SQLite make them; if
    neither, `immutable` reads the file alone, which is all there is to read then."""
    if file_writable and (folder_writable or wal_and_shm):
        return "rw"
    return "ro" if folder_writable or wal_and_shm else "immutable"


def sqlite_open_mode(path: Path) -> OpenMode:
    """`choose_open_mode` for the file at `path` (a file not there yet is made: "rw").
    `os.access` also answers for a read-only mount, where even root cannot write."""
    if not path.exists():
        return "rw"
    beside = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    present = all(p.exists() for p in beside)
    return choose_open_mode(
        os.access(path, os.W_OK) and (not present or all(os.access(p, os.W_OK) for p in beside)),
        os.access(path.parent, os.W_OK),
        present,
    )


def sqlite_uri(path: Path, mode: OpenMode) -> str:
    """The `file:` URI that opens `path` read-only ("ro") or as an unchanging file."""
    query = "mode=ro&immutable=1" if mode == "immutable" else "mode=ro"
    return f"file:{quote(path.resolve().as_posix())}?{query}"


def opened_read_only(engine: Engine) -> OpenMode | None:
    """ "ro" or "immutable" when `open_engine` found the SQLite file read-only, else None."""
    return engine.get_execution_options().get(_OPENED_READ_ONLY)


def read_only_engine(engine: Engine) -> Engine:
    """The same engine, its transactions marked read-only (plain BEGIN on SQLite)."""
    return engine.execution_options(**{_READ_OPTION: True})


def file_identity(engine: Engine) -> tuple[int, int] | None:
    """(device, inode) of a SQLite engine's file, None for a server or a file not there."""
    path = sqlite_file(engine)
    try:
        info = path.stat() if path is not None else None
    except OSError:
        return None
    return None if info is None else (info.st_dev, info.st_ino)


def file_problem(engine: Engine, opened: tuple[int, int] | None) -> str | None:
    """What became of the SQLite file that was `opened` (its identity then): "deleted" or
    "replaced by another file"; None while it is still there (and for a server)."""
    path = sqlite_file(engine)
    if path is None or opened is None:
        return None
    now = file_identity(engine)
    if now is None:
        return "deleted"
    return None if now == opened else "replaced by another file"


def shown_url(url: str) -> str:
    """`url` with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def alembic_config() -> Config:
    """Alembic configured from code: the migrations shipped beside this module."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def error_reason(exc: BaseException) -> str:
    """The first line of what the database driver said (or of `exc` itself), for messages."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def require_current_schema(engine: Engine, shown: str) -> None:
    """A store that cannot be written cannot be migrated: it must be at this version's
    schema already (MigrationError, one line, otherwise)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        made = "a newer" if current is not None else "no"
        if current is not None and current in _known_revisions():
            made = "an older"
        raise MigrationError(
            f"{shown} is read-only and was made by {made} RL Studio (schema {current}; this "
            f"version reads {head}): open it once where it can be written, to upgrade it"
        )


def _known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def upgrade(engine: Engine) -> Path | None:
    """Migrates the database to the newest schema, in one transaction of `engine`.

    A SQLite file made by an earlier version is first copied next to itself; the copy's
    path is returned (None when nothing needed migrating or the database is not a file).
    """
    config = alembic_config()
    scripts = ScriptDirectory.from_config(config)
    head = scripts.get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current == head:
        return None
    known = {script.revision for script in scripts.walk_revisions()}
    if current is not None and current not in known:
        raise MigrationError(
            f"{shown_url(str(engine.url))} was made by a newer RL Studio (schema {current}; "
            f"this version knows up to {head}); open it with that version or newer"
        )
    path = sqlite_file(engine)
    backup = backup_sqlite(path, current) if current is not None and path is not None else None
    with engine.connect() as connection, _foreign_keys_off(connection), connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        if engine.dialect.name == "sqlite":  # the rebuilt tables still point at what exists
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise MigrationError(f"the upgrade left {len(broken)} rows without their run")
    return backup


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite's foreign keys off for a migration that rebuilds a table others point at
    (dropping the old `runs` would otherwise cascade to every metric). The pragma only
    works outside a transaction, so it is set on the driver's connection before BEGIN."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _configure_sqlite(engine: Engine, *, writes: bool = True) -> None:
    """WAL so readers never wait for the trainer; BEGIN IMMEDIATE so writers queue, not deadlock.

    pysqlite's own transaction handling is switched off (isolation_level None) and every
    transaction begins here instead: plain BEGIN for read-only sessions, BEGIN IMMEDIATE
    for everything else. A file opened read-only keeps the journal mode it has.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=10000")
            if writes:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
