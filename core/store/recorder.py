"""The trainer's buffered writer: queues a run's metrics, samples and logs, flushes in batches.

It also rides out a database server that is briefly unreachable (a PostgreSQL restart, a
network hiccup): what cannot be written stays queued in order, in memory up to a bound and
then in a local spill file, and is written once the server answers again. A store whose
disk is full is waited for the same way (`store_full`, `wait_for_space`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from core.events import Finding, SettingsChanged
from core.store.engine import shown_url
from core.store.records import (
    STORE_FULL,
    LogRow,
    MetricRow,
    RunStatus,
    StoreFull,
    StoreUnavailable,
    utc_now,
)

if TYPE_CHECKING:
    from core.store.store import Store

log = logging.getLogger(__name__)


def is_connection_error(error: BaseException, dialect: str = "") -> bool:
    """True for an error that means "the server is not there right now" (try again later),
    not "this write is wrong". SQLite's only such error is a database locked too long."""
    if isinstance(error, StoreFull):  # a full disk: it can be written again once freed
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, (sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    if isinstance(error, sa_exc.OperationalError):
        return dialect != "sqlite" or "database is locked" in str(error)
    return False


def _rows(op: Mapping[str, Any]) -> int:
    if op["kind"] != "batch":
        return 1
    return (
        sum(len(values) for _s, _w, values in op["metrics"]) + len(op["samples"]) + len(op["logs"])
    )


def _to_json(op: Mapping[str, Any]) -> str:
    if op["kind"] == "batch":
        op = dict(op, logs=[(at.isoformat(), level, msg) for at, level, msg in op["logs"]])
    return json.dumps(op)


def _from_json(line: str) -> dict[str, Any]:
    op = json.loads(line)
    if op["kind"] == "batch":
        op["logs"] = [(datetime.fromisoformat(at), level, msg) for at, level, msg in op["logs"]]
    return op


class RunRecorder:
    """The trainer's buffered writer for one run: many calls, few transactions.

    `metrics`, `samples` and `log` only queue; a flush writes everything queued plus a
    heartbeat in one transaction. They flush by themselves once `flush_interval_s` has passed
    since the last flush or `max_pending` rows are waiting; nothing flushes in the
    background, so call `flush()` (or leave the `with` block) when a step ends. `status` and
    `checkpoint` go through the same queue, so they are written after the rows before them.

    When the server cannot be reached, nothing is lost and training goes on: the writes
    stay queued, in order, and are tried again after `retry_interval_s` (doubling up to
    `max_retry_interval_s`). Past `max_buffered` rows in memory the queue moves to a spill
    file (JSON lines) that is replayed first once the server is back. `close()` waits up to
    `close_timeout_s` for the server, then raises `StoreUnavailable` naming the spill file.
    Any other error (a deleted run, a bad value) is raised at once, and stays queued.

    A SQLite file deleted or replaced under the run (`Store.file_problem`, checked before
    every write) counts as a store that went away: nothing more is written into a file no
    one can open, and `close()` raises `StoreUnavailable` at once (there is nothing to wait
    for), the rows kept in the spill file and the run never stored as finished.
    """

    def __init__(
        self,
        store: Store,
        run_id: int,
        flush_interval_s: float = 1.0,
        max_pending: int = 1000,
        *,
        max_buffered: int = 100_000,
        retry_interval_s: float = 1.0,
        max_retry_interval_s: float = 30.0,
        close_timeout_s: float = 600.0,
        spill_dir: Path | None = None,
        max_full_retry_s: float = 5.0,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.max_buffered = max_buffered
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        self.close_timeout_s = close_timeout_s
        # a full store is retried more often than a server: a try costs one local BEGIN
        self.max_full_retry_s = max_full_retry_s
        self._spill_dir = spill_dir
        self._lock = threading.RLock()
        self._metrics: list[MetricRow] = []
        self._samples: list[Mapping[str, Any]] = []
        self._logs: list[LogRow] = []
        self._pending = 0
        self._max_step: int | None = None
        self._last_flush = time.monotonic()
        # Writes that failed for want of a server, oldest first: the spill file's, then these.
        self._backlog: deque[dict[str, Any]] = deque()
        self._backlog_rows = 0
        self._spilled_ops = 0
        self._spilled_rows = 0
        self._offline_since: float | None = None
        self._next_try = 0.0
        self._wait = retry_interval_s
        self._file_gone: str | None = None  # what became of a SQLite file (Store.file_problem)
        self._full: StoreFull | None = None  # the store's disk is full: why, as it said
        self.outages = 0  # how many times the server went away during this run

    @property
    def pending(self) -> int:
        """Rows queued and not yet written (in memory or spilled)."""
        return self._pending + self._backlog_rows + self._spilled_rows

    @property
    def offline(self) -> bool:
        """True while the last write found no server."""
        return self._offline_since is not None

    @property
    def store_full(self) -> bool:
        """True while the last write found the store's disk full."""
        return self.offline and self._full is not None

    def full_message(self) -> str:
        """What to tell the user while `store_full` (begins with `STORE_FULL`)."""
        reason = self._full.reason if self._full is not None else "no space"
        return (
            f"{STORE_FULL}: {shown_url(self.store.url)} has no space left ({reason}); run "
            f"{self.run_id} waits for space, its {self.pending} rows kept in memory"
        )

    def wait_for_space(self, give_up: Callable[[], bool], poll_s: float = 0.2) -> bool:
        """Blocks while the store is full, trying again with backoff, until every row kept is
        written (True) or `give_up()` (False, the rows still kept). The trainer waits here,
        so no more rows pile up meanwhile."""
        while self.store_full:
            if give_up():
                return False
            time.sleep(max(0.0, min(poll_s, self._next_try - time.monotonic())))
            self.flush()
        return True

    @property
    def spill_path(self) -> Path:
        """Where writes go once more than `max_buffered` rows wait for the server."""
        if self._spill_dir is None:
            from core.paths import data_dir

            self._spill_dir = data_dir() / "spill"
        url = re.sub(r"[^A-Za-z0-9_.-]+", "_", shown_url(self.store.url))[-80:]
        return self._spill_dir / f"{url}-run-{self.run_id}-{os.getpid()}.jsonl"

    def metrics(self, step: int, wall_time: float, values: Mapping[str, float | None]) -> None:
        with self._lock:
            self._metrics.append((step, wall_time, dict(values)))
            self._pending += len(values)
            self._saw_step(step)
        self._maybe_flush()

    def samples(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self._samples.extend(rows)
            self._pending += len(rows)
            for row in rows:
                self._saw_step(int(row["step"]))
        self._maybe_flush()

    def log(self, level: str, message: str) -> None:
        with self._lock:
            self._logs.append((utc_now(), level, message))
            self._pending += 1
        self._maybe_flush()

    def checkpoint(self, step: int, path: str) -> None:
        """Lists a checkpoint, after every row queued before it."""
        self._queue({"kind": "checkpoint", "step": int(step), "path": str(path)})

    def finding(self, finding: Finding) -> None:
        """Stores (or updates) a finding of the run doctor, after every row queued before it."""
        self._queue({"kind": "finding", "finding": dataclasses.asdict(finding)})

    def settings_changed(self, change: SettingsChanged) -> None:
        """Stores settings changed while the run goes on, after every row queued before it."""
        self._queue({"kind": "settings", "change": dataclasses.asdict(change)})

    def status(self, status: RunStatus | str, error: str | None = None) -> None:
        """Moves the run to `status`, after every row queued before it."""
        self._queue({"kind": "status", "status": RunStatus(status).value, "error": error})

    def flush(self) -> None:
        """Writes everything queued, the rows in one transaction. With no server it keeps
        them and returns (the next flush after the retry interval tries again); any other
        failure is raised, and what failed stays queued."""
        with self._lock:
            self._take_batch()
            self._drain()
            self._last_flush = time.monotonic()

    def close(self, timeout_s: float | None = None) -> None:
        """Flushes, waiting up to `timeout_s` (default `close_timeout_s`) for a server
        that is away; then raises `StoreUnavailable` with everything kept in the spill file."""
        deadline = time.monotonic() + (self.close_timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            self._take_batch()
            while True:
                self._next_try = 0.0
                self._drain()
                if not self._backlog and not self._spilled_ops:
                    return
                left = deadline - time.monotonic()
                if self._file_gone is not None:  # no file to wait for
                    self._spill()
                    raise StoreUnavailable(
                        f"{self._gone_message()}: the run is not stored as finished; "
                        f"its last {self._kept()}"
                    )
                if left <= 0:
                    self._spill()
                    still = "full" if self._full is not None else "unreachable"
                    raise StoreUnavailable(
                        f"the store at {shown_url(self.store.url)} is still {still}; "
                        f"run {self.run_id}'s last {self._kept()}"
                    )
                time.sleep(min(self._wait, left))

    def _kept(self) -> str:
        """Where the rows not written are, once `close` gave up on the store."""
        if self._backlog:  # the spill file could not be written either
            return f"{self._backlog_rows} rows are lost: {self.spill_path} cannot be written"
        return f"{self._spilled_rows} rows are kept in {self.spill_path}"

    # -- the queue ------------------------------------------------------------------------

    def _queue(self, op: dict[str, Any]) -> None:
        with self._lock:
            self._take_batch()
            self._backlog.append(op)
            self._backlog_rows += 1
            self._drain()
            self._last_flush = time.monotonic()

    def _take_batch(self) -> None:
        """The rows queued so far become one write at the end of the backlog, or join the
        batch there (waiting for the store): a store that is back, or has space again,
        takes them all in one transaction (on a disk with little room, a transaction per
        flush would grow SQLite's WAL by a few pages each, and fill it again)."""
        if not self._pending:
            return
        last = self._backlog[-1] if self._backlog else None
        if last is not None and last["kind"] == "batch":
            last["metrics"].extend(self._metrics)
            last["samples"].extend(self._samples)
            last["logs"].extend(self._logs)
            steps = [s for s in (last["last_step"], self._max_step) if s is not None]
            last["last_step"] = max(steps) if steps else None
            self._backlog_rows += self._pending
            self._metrics, self._samples, self._logs = [], [], []
            self._pending = 0
            return
        op = {
            "kind": "batch",
            "metrics": self._metrics,
            "samples": self._samples,
            "logs": self._logs,
            "last_step": self._max_step,
        }
        self._backlog.append(op)
        self._backlog_rows += self._pending
        self._metrics, self._samples, self._logs = [], [], []
        self._pending = 0

    def _write(self, op: Mapping[str, Any]) -> None:
        if op["kind"] == "batch":
            self.store.write_batch(
                self.run_id,
                metrics=op["metrics"],
                samples=op["samples"],
                logs=op["logs"],
                last_step=op["last_step"],
            )
        elif op["kind"] == "checkpoint":
            self.store.add_checkpoint(self.run_id, op["step"], op["path"])
        elif op["kind"] == "finding":
            self.store.add_findings(self.run_id, [Finding(**op["finding"])])
        elif op["kind"] == "settings":
            change = op["change"]
            changes = tuple(tuple(c) for c in change["changes"])  # lists after a spill file
            self.store.record_settings_change(
                self.run_id, SettingsChanged(change["step"], changes, change["config"])
            )
        else:
            self.store.set_status(self.run_id, op["status"], error=op["error"])

    def _drain(self) -> None:
        """Writes the spill file's ops, then the backlog's, oldest first, each in its own
        transaction; stops at the first one the server is not there for."""
        if not self._backlog and not self._spilled_ops:
            return
        if self.offline and time.monotonic() < self._next_try:
            self._maybe_spill()
            return
        # A SQLite file deleted (or replaced) under a running trainer would take every
        # write into a file no one can open: such a store has gone away like a server.
        self._file_gone = self.store.file_problem()
        if self._file_gone is not None:
            self._went_offline(None)
            self._maybe_spill()
            return
        try:
            if self._spilled_ops:
                self._replay_spill()
            while self._backlog:
                self._write(self._backlog[0])
                self._backlog_rows -= _rows(self._backlog.popleft())
        except Exception as error:
            if not is_connection_error(error, self.store.engine.dialect.name):
                raise
            self._full = error if isinstance(error, StoreFull) else None
            self._went_offline(error)
            self._maybe_spill()
            return
        if self.offline:
            self._back_online()

    def _went_offline(self, error: BaseException | None) -> None:
        now = time.monotonic()
        if self._offline_since is None:
            self._offline_since = now
            self._wait = self.retry_interval_s
            self.outages += 1
            if self._full is not None:  # the runner pauses the run and says so
                log.info("%s", self.full_message())
            elif error is None:
                log.warning(
                    "%s; training goes on and its rows are kept in memory, written if the "
                    "file comes back",
                    self._gone_message(),
                )
            else:
                reason = " ".join(str(getattr(error, "orig", None) or error).split())[:200]
                log.warning(
                    "the store at %s is unreachable (%s); training goes on and its rows are "
                    "kept until it is back",
                    shown_url(self.store.url),
                    reason,
                )
        else:
            most = self.max_full_retry_s if self._full else self.max_retry_interval_s
            self._wait = min(self._wait * 2, most)
        self._next_try = now + self._wait

    def _gone_message(self) -> str:
        return (
            f"the database file {shown_url(self.store.url).removeprefix('sqlite:///')} was "
            f"{self._file_gone} while run {self.run_id} was training"
        )

    def _back_online(self) -> None:
        away = time.monotonic() - (self._offline_since or time.monotonic())
        self._offline_since = None
        self._wait = self.retry_interval_s
        what = "full" if self._full is not None else "unreachable"
        self._full = None
        message = f"the store was {what} for {away:.0f} s; every row kept meanwhile is written"
        log.warning(message)
        self._logs.append((utc_now(), "warning", message))
        self._pending += 1

    # -- the spill file -------------------------------------------------------------------

    def _maybe_spill(self) -> None:
        if self._backlog_rows > self.max_buffered:
            self._spill()

    def _spill(self) -> None:
        """Moves the backlog to the end of the spill file (it is written before the rest).
        A spill file that cannot be written (its disk is full too) is cut back to what it
        held, and the backlog stays in memory: nothing is kept twice or lost."""
        if not self._backlog:
            return
        path = self.spill_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                held = fh.tell()
                try:
                    for op in self._backlog:
                        fh.write(_to_json(op) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError:
                    fh.truncate(held)
                    raise
        except OSError as error:
            log.warning("cannot spill to %s (%s): the rows stay in memory", path, error)
            return
        if not self._spilled_ops:
            log.warning("more than %d rows wait for the store: kept in %s", self.max_buffered, path)
        self._spilled_ops += len(self._backlog)
        self._spilled_rows += self._backlog_rows
        self._backlog.clear()
        self._backlog_rows = 0

    def _replay_spill(self) -> None:
        path = self.spill_path
        lines = path.read_text(encoding="utf-8").splitlines()
        done = 0
        try:
            for line in lines:
                op = _from_json(line)
                self._write(op)
                done += 1
                self._spilled_ops -= 1
                self._spilled_rows -= _rows(op)
        finally:
            if done == len(lines):
                path.unlink(missing_ok=True)
            elif done:  # keep what is left, atomically
                tmp = path.with_suffix(".tmp")
                tmp.write_text("".join(line + "\n" for line in lines[done:]), encoding="utf-8")
                os.replace(tmp, path)

    # -- flushing by itself ---------------------------------------------------------------

    def _saw_step(self, step: int) -> None:
        if self._max_step is None or step > self._max_step:
            self._max_step = step

    def _maybe_flush(self) -> None:
        due = time.monotonic() - self._last_flush >= self.flush_interval_s
        if due or self._pending >= self.max_pending:
            self.flush()

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:  # an error is on its way up already: do not hide it behind this one
            self.close()
        except Exception as error:
            log.warning("%s", error)
