"""A run's life in the database: created, claimed by one process, kept alive by its
heartbeat, moved from status to status, deleted; and runs whose process is gone marked so.

`Store` inherits these; they are here so the store's records and queries stay readable.
Claiming is the one step two processes may race for: it reads and updates the run in one
transaction holding the run's row (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT ... FOR
UPDATE), so of two resumes started together exactly one gets the run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psutil
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core import __version__
from core.store.engine import error_reason
from core.store.records import (
    FINISHED,
    LIVE,
    Claim,
    RunBusy,
    RunNotFound,
    RunStatus,
    StoreFull,
    StoreReadOnly,
    dumps,
    utc_now,
)
from core.store.schema import Run

STALE_HEARTBEAT = timedelta(minutes=10)
# a live run: trained by its process (pending: that process is loading it)
HELD = (*LIVE, RunStatus.PENDING.value)


def _pid_alive(pid: int | None) -> bool:
    return pid is not None and psutil.pid_exists(pid)


def owner_alive(
    pid: int | None, hostname: str | None, heartbeat: datetime | None, now: datetime
) -> bool:
    """On this host, by its pid; on another (a shared database), by a fresh heartbeat."""
    if hostname == socket.gethostname():
        return _pid_alive(pid)
    return heartbeat is not None and heartbeat >= now - STALE_HEARTBEAT


class StoreSessions:
    """The engines and the two kinds of session every part of the store works through."""

    _engine: Engine
    _reader: Engine
    _shown_url: str
    read_only_reason: str | None = None  # set when the store was found read-only

    @contextmanager
    def _write(self) -> Iterator[Session]:
        if self.read_only_reason is not None:  # said at once, not after a failed BEGIN
            raise StoreReadOnly(self._shown_url, self.read_only_reason)
        try:
            with Session(self._engine) as session, session.begin():
                yield session
        except OperationalError as exc:
            if "database or disk is full" in str(exc.orig):  # SQLITE_FULL
                raise StoreFull(self._shown_url, error_reason(exc)) from exc
            if "readonly" not in str(exc.orig) and "read-only" not in str(exc.orig):
                raise
            raise StoreReadOnly(self._shown_url, error_reason(exc)) from exc

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._reader) as session:
            yield session

    def _run_row(self, session: Session, run_id: int) -> Run:
        run = session.get(Run, run_id)
        if run is None:
            raise RunNotFound(run_id, self._shown_url)
        return run

    def _require_run(self, session: Session, run_id: int) -> None:
        if session.scalar(select(Run.id).where(Run.id == run_id)) is None:
            raise RunNotFound(run_id, self._shown_url)


class RunLifecycle(StoreSessions):
    """Creating, claiming, moving and deleting runs."""

    def create_run(
        self,
        *,
        name: str,
        config: dict[str, Any],
        algorithm: str,
        model: str,
        seed: int,
        total_steps: int,
        parent_run_id: int | None = None,
    ) -> int:
        """A new pending run owned by this process; returns its id (never one used before)."""
        run = Run(
            name=name,
            status=RunStatus.PENDING.value,
            algorithm=algorithm,
            model=model,
            seed=seed,
            config_json=dumps(config),
            total_steps=total_steps,
            last_step=-1,
            created_at=utc_now(),
            pid=os.getpid(),
            hostname=socket.gethostname(),
            app_version=__version__,
            parent_run_id=parent_run_id,
        )
        with self._write() as session:
            session.add(run)
            session.flush()
            return run.id

    def set_status(self, run_id: int, status: RunStatus | str, error: str | None = None) -> None:
        """Moves a run to `status`, stamping started/finished times the first time they apply."""
        status = RunStatus(status)
        now = utc_now()
        with self._write() as session:
            run = self._run_row(session, run_id)
            run.status = status.value
            run.heartbeat_at = now
            if status is RunStatus.RUNNING and run.started_at is None:
                run.started_at = now
            if status in FINISHED:
                run.finished_at = now
            if error is not None:
                run.error = error

    def claim_run(self, run_id: int) -> Claim:
        """This process takes the run (to start or resume it): it becomes running and
        unfinished again. Raises `RunBusy` when another live process holds it; a run left
        live by a process that is gone is taken over. Returns what the run was before."""
        me, host, now = os.getpid(), socket.gethostname(), utc_now()
        with self._write() as session:
            run = session.scalar(select(Run).where(Run.id == run_id).with_for_update())
            if run is None:
                raise RunNotFound(run_id, self._shown_url)
            created_here = run.status == RunStatus.PENDING.value and (run.pid, run.hostname) == (
                me,
                host,
            )
            if (
                run.status in HELD
                and not created_here
                and owner_alive(run.pid, run.hostname, run.heartbeat_at or run.created_at, now)
            ):
                raise RunBusy(run_id, run.status, run.pid, run.hostname)
            claim = Claim(RunStatus(run.status), run.error, run.finished_at)
            run.pid, run.hostname = me, host
            run.status = RunStatus.RUNNING.value
            run.finished_at = None
            run.error = None
            run.heartbeat_at = now
            if run.started_at is None:
                run.started_at = now
        return claim

    def unclaim_run(self, run_id: int, claim: Claim) -> None:
        """Gives back a run this process claimed and did not train: as it was before."""
        with self._write() as session:
            session.execute(
                update(Run)
                .where(Run.id == run_id, Run.pid == os.getpid())
                .values(status=claim.status.value, error=claim.error, finished_at=claim.finished_at)
            )

    def touch(self, run_id: int) -> bool:
        """The heartbeat of a run this process holds; False when it holds it no more."""
        with self._write() as session:
            done = session.execute(
                update(Run)
                .where(
                    Run.id == run_id,
                    Run.pid == os.getpid(),
                    Run.hostname == socket.gethostname(),
                )
                .values(heartbeat_at=utc_now())
            )
        return bool(done.rowcount)

    def heartbeat(self, run_id: int, last_step: int) -> None:
        with self._write() as session:
            self._heartbeat(session, run_id, last_step)

    def _heartbeat(self, session: Session, run_id: int, last_step: int | None) -> None:
        run = self._run_row(session, run_id)
        run.heartbeat_at = utc_now()
        if last_step is not None:
            run.last_step = last_step

    def set_total_steps(self, run_id: int, n: int) -> None:
        with self._write() as session:
            self._run_row(session, run_id).total_steps = n

    def set_config(self, run_id: int, config: dict[str, Any], total_steps: int) -> None:
        """The run's settings as changed on resume (the stored recipe is what it runs with)."""
        with self._write() as session:
            run = self._run_row(session, run_id)
            run.config_json = dumps(config)
            run.total_steps = total_steps

    def rename_run(self, run_id: int, name: str) -> None:
        with self._write() as session:
            self._run_row(session, run_id).name = name

    def delete_run(self, run_id: int) -> None:
        """Deletes the run's rows; the database cascades to its metrics, samples,
        checkpoints and logs. (Its checkpoint folder: `core.runner.delete_run`.)"""
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(delete(Run).where(Run.id == run_id))

    def mark_interrupted(self) -> list[int]:
        """Runs left 'running'/'paused' by a process that is gone become 'interrupted'.

        On this host a run's process is checked by pid; a run from another host (a shared
        database) only counts as gone once its heartbeat is older than ten minutes.
        """
        now = utc_now()
        with self._write() as session:
            candidates = session.execute(
                select(Run.id, Run.pid, Run.hostname, Run.heartbeat_at, Run.created_at).where(
                    Run.status.in_(LIVE)
                )
            ).all()
            gone = [
                row.id
                for row in candidates
                if not owner_alive(row.pid, row.hostname, row.heartbeat_at or row.created_at, now)
            ]
            if gone:
                session.execute(
                    update(Run)
                    .where(Run.id.in_(gone))
                    .values(status=RunStatus.INTERRUPTED.value, finished_at=now)
                )
        return gone
