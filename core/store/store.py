"""The run store: one database of runs, their metrics, samples, checkpoints and logs.

The trainer writes through a `RunRecorder` (batched, one transaction per flush); the studio
and the CLI read through the query methods, which hand back plain dataclasses and numpy
arrays so no ORM object ever leaves this module. SQLite is the default; any SQLAlchemy URL
works because queries use no dialect-specific SQL.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import psutil
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.orm import Session

from core.paths import data_dir
from core.store.schema import Checkpoint, LogLine, Metric, Run, Sample

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
REWARD_KEY = "reward/mean"
STALE_HEARTBEAT = timedelta(minutes=10)
_READ_OPTION = "rlstudio_read_only"


class RunStatus(str, Enum):
    """Where a run stands. Stored as its string value."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        """The bare value, so f-strings print 'running' on every Python version."""
        return self.value


_FINISHED = {RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INTERRUPTED}
_LIVE = (RunStatus.RUNNING.value, RunStatus.PAUSED.value)


class RunNotFound(KeyError):
    """Asked for a run id the database does not hold."""

    def __init__(self, run_id: int, url: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id
        self.message = f"no run with id {run_id} in {url}"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RunInfo:
    """A run as the run list shows it."""

    id: int
    name: str
    status: RunStatus
    algorithm: str
    model: str
    seed: int
    total_steps: int
    last_step: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    last_reward: float | None


@dataclass(frozen=True, eq=False)
class MetricSeries:
    """One metric's points, ordered by step; values keep NaN and ±inf."""

    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray


@dataclass(frozen=True)
class SampleRow:
    """One recorded completion; the per-token lists are None when not recorded."""

    step: int
    idx: int
    prompt: str
    completion: str
    reward: float | None
    components: dict[str, float | None]
    tokens: list[Any] | None
    logprobs: list[float | None] | None
    kl: list[float | None] | None
    advantages: list[float | None] | None


@dataclass(frozen=True)
class CheckpointInfo:
    """A saved state a run can resume from."""

    step: int
    path: str
    created_at: datetime


@dataclass(frozen=True)
class LogEntry:
    """One line of a run's log."""

    time: datetime
    level: str
    message: str


MetricRow = tuple[int, float, Mapping[str, float | None]]
LogRow = tuple[datetime, str, str]


def default_db_url() -> str:
    """SQLite file in the user's data folder (created if missing)."""
    folder = data_dir()
    return f"sqlite:///{(folder / 'rlstudio.db').as_posix()}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _jsonable(value: Any) -> Any:
    """Plain JSON data with non-finite floats as null (json would write invalid NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return _jsonable(value.tolist())
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), allow_nan=False)


def _dumps_optional(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _loads_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _encode_metric(value: Any) -> tuple[float | None, str | None]:
    """(value, special): non-finite numbers go to `special` so they survive SQLite."""
    if value is None:
        return None, None
    number = float(value)
    if math.isnan(number):
        return None, "nan"
    if math.isinf(number):
        return None, "inf" if number > 0 else "-inf"
    return number, None


def _decode_metric(value: float | None, special: str | None) -> float:
    if special is not None:
        return float(special)
    return math.nan if value is None else float(value)


def _pid_alive(pid: int | None) -> bool:
    return pid is not None and psutil.pid_exists(pid)


def _configure_sqlite(engine: Engine) -> None:
    """WAL so readers never wait for the trainer; BEGIN IMMEDIATE so writers queue, not deadlock.

    pysqlite's own transaction handling is switched off (isolation_level None) and every
    transaction begins here instead: plain BEGIN for read-only sessions, BEGIN IMMEDIATE
    for everything else.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Store:
    """Opens (and migrates) the database; writes runs and answers queries about them."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_db_url()
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self._engine = create_engine(self.url)
        if self._engine.dialect.name == "sqlite":
            _configure_sqlite(self._engine)
        self._reader = self._engine.execution_options(**{_READ_OPTION: True})
        self._shown_url = parsed.render_as_string(hide_password=True)
        self._upgrade()
        self.mark_interrupted()

    @property
    def engine(self) -> Engine:
        """The underlying engine (tests count its commits; tools may run raw SQL)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _upgrade(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._engine) as session, session.begin():
            yield session

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

    # -- runs ---------------------------------------------------------------------------

    def create_run(
        self,
        *,
        name: str,
        config: dict[str, Any],
        algorithm: str,
        model: str,
        seed: int,
        total_steps: int,
    ) -> int:
        """A new pending run owned by this process; returns its id."""
        run = Run(
            name=name,
            status=RunStatus.PENDING.value,
            algorithm=algorithm,
            model=model,
            seed=seed,
            config_json=_dumps(config),
            total_steps=total_steps,
            last_step=-1,
            created_at=_now(),
            pid=os.getpid(),
            hostname=socket.gethostname(),
        )
        with self._write() as session:
            session.add(run)
            session.flush()
            return run.id

    def set_status(self, run_id: int, status: RunStatus | str, error: str | None = None) -> None:
        """Moves a run to `status`, stamping started/finished times the first time they apply."""
        status = RunStatus(status)
        now = _now()
        with self._write() as session:
            run = self._run_row(session, run_id)
            run.status = status.value
            run.heartbeat_at = now
            if status is RunStatus.RUNNING and run.started_at is None:
                run.started_at = now
            if status in _FINISHED:
                run.finished_at = now
            if error is not None:
                run.error = error

    def claim_run(self, run_id: int) -> None:
        """This process takes over a run (resume): it becomes running and unfinished again."""
        now = _now()
        with self._write() as session:
            run = self._run_row(session, run_id)
            run.pid = os.getpid()
            run.hostname = socket.gethostname()
            run.status = RunStatus.RUNNING.value
            run.finished_at = None
            run.error = None
            run.heartbeat_at = now
            if run.started_at is None:
                run.started_at = now

    def heartbeat(self, run_id: int, last_step: int) -> None:
        with self._write() as session:
            self._heartbeat(session, run_id, last_step)

    def _heartbeat(self, session: Session, run_id: int, last_step: int | None) -> None:
        run = self._run_row(session, run_id)
        run.heartbeat_at = _now()
        if last_step is not None:
            run.last_step = last_step

    def set_total_steps(self, run_id: int, n: int) -> None:
        with self._write() as session:
            self._run_row(session, run_id).total_steps = n

    def rename_run(self, run_id: int, name: str) -> None:
        with self._write() as session:
            self._run_row(session, run_id).name = name

    def delete_run(self, run_id: int) -> None:
        """Deletes the run; the database cascades to its metrics, samples, checkpoints, logs."""
        with self._write() as session:
            self._require_run(session, run_id)
            session.execute(delete(Run).where(Run.id == run_id))

    def mark_interrupted(self) -> list[int]:
        """Runs left 'running'/'paused' by a process that is gone become 'interrupted'.

        On this host a run's process is checked by pid; a run from another host (a shared
        database) only counts as gone once its heartbeat is older than ten minutes.
        """
        now = _now()
        this_host = socket.gethostname()
        with self._write() as session:
            candidates = session.execute(
                select(Run.id, Run.pid, Run.hostname, Run.heartbeat_at, Run.created_at).where(
                    Run.status.in_(_LIVE)
                )
            ).all()
            gone = [
                row.id
                for row in candidates
                if (
                    not _pid_alive(row.pid)
                    if row.hostname == this_host
                    else (row.heartbeat_at or row.created_at) < now - STALE_HEARTBEAT
                )
            ]
            if gone:
                session.execute(
                    update(Run)
                    .where(Run.id.in_(gone))
                    .values(status=RunStatus.INTERRUPTED.value, finished_at=now)
                )
        return gone

    # -- what a run records -------------------------------------------------------------

    def add_metrics(self, run_id: int, rows: Sequence[MetricRow]) -> None:
        """Rows of (step, wall_time, {key: value}); writing a (step, key) again replaces it."""
        with self._write() as session:
            self._require_run(session, run_id)
            self._add_metrics(session, run_id, rows)

    def _add_metrics(self, session: Session, run_id: int, rows: Sequence[MetricRow]) -> None:
        by_key: dict[tuple[int, str], dict[str, Any]] = {}
        for step, wall_time, values in rows:
            for key, raw in values.items():
                value, special = _encode_metric(raw)
                by_key[(int(step), str(key))] = {
                    "run_id": run_id,
                    "step": int(step),
                    "key": str(key),
                    "value": value,
                    "special": special,
                    "wall_time": float(wall_time),
                }
        if not by_key:
            return
        table = Metric.__table__
        session.execute(
            delete(table).where(
                and_(
                    table.c.run_id == bindparam("b_run"),
                    table.c.step == bindparam("b_step"),
                    table.c.key == bindparam("b_key"),
                )
            ),
            [{"b_run": run_id, "b_step": step, "b_key": key} for step, key in by_key],
        )
        session.execute(insert(table), list(by_key.values()))

    def add_samples(self, run_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows with step, idx, prompt, completion, reward, components and optional
        tokens/logprobs/kl/advantages lists."""
        with self._write() as session:
            self._require_run(session, run_id)
            self._add_samples(session, run_id, rows)

    def _add_samples(
        self, session: Session, run_id: int, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        if not rows:
            return
        session.execute(
            insert(Sample.__table__),
            [
                {
                    "run_id": run_id,
                    "step": int(row["step"]),
                    "idx": int(row["idx"]),
                    "prompt": row["prompt"],
                    "completion": row["completion"],
                    "reward": _finite_or_none(row.get("reward")),
                    "components_json": _dumps(row.get("components") or {}),
                    "tokens_json": _dumps_optional(row.get("tokens")),
                    "logprobs_json": _dumps_optional(row.get("logprobs")),
                    "kl_json": _dumps_optional(row.get("kl")),
                    "advantages_json": _dumps_optional(row.get("advantages")),
                }
                for row in rows
            ],
        )

    def add_checkpoint(self, run_id: int, step: int, path: str) -> None:
        """Records a checkpoint; saving the same step again replaces its path."""
        with self._write() as session:
            self._require_run(session, run_id)
            existing = session.scalar(
                select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step)
            )
            if existing is None:
                session.add(Checkpoint(run_id=run_id, step=step, path=path, created_at=_now()))
            else:
                existing.path = path
                existing.created_at = _now()

    def delete_after(self, run_id: int, step: int) -> None:
        """Forgets everything past `step`, so a run resumed from that checkpoint starts clean."""
        with self._write() as session:
            run = self._run_row(session, run_id)
            for model in (Metric, Sample, Checkpoint):
                session.execute(delete(model).where(model.run_id == run_id, model.step > step))
            run.last_step = min(run.last_step, step)

    def log(self, run_id: int, level: str, message: str) -> None:
        with self._write() as session:
            self._require_run(session, run_id)
            self._add_logs(session, run_id, [(_now(), level, message)])

    def _add_logs(self, session: Session, run_id: int, rows: Sequence[LogRow]) -> None:
        if rows:
            session.execute(
                insert(LogLine.__table__),
                [
                    {"run_id": run_id, "time": at, "level": level, "message": message}
                    for at, level, message in rows
                ],
            )

    def write_batch(
        self,
        run_id: int,
        *,
        metrics: Sequence[MetricRow] = (),
        samples: Sequence[Mapping[str, Any]] = (),
        logs: Sequence[LogRow] = (),
        last_step: int | None = None,
    ) -> None:
        """Metrics, samples, logs and a heartbeat in one transaction (the recorder's flush)."""
        with self._write() as session:
            self._heartbeat(session, run_id, last_step)
            self._add_metrics(session, run_id, metrics)
            self._add_samples(session, run_id, samples)
            self._add_logs(session, run_id, logs)

    # -- queries ------------------------------------------------------------------------

    def _run_infos(self, session: Session, run_id: int | None = None) -> list[RunInfo]:
        latest = (
            select(Metric.run_id, func.max(Metric.step).label("step"))
            .where(Metric.key == REWARD_KEY)
            .group_by(Metric.run_id)
            .subquery()
        )
        query = (
            select(Run, Metric.value, Metric.special, Metric.id)
            .outerjoin(latest, latest.c.run_id == Run.id)
            .outerjoin(
                Metric,
                and_(
                    Metric.run_id == Run.id,
                    Metric.key == REWARD_KEY,
                    Metric.step == latest.c.step,
                ),
            )
            .order_by(Run.created_at.desc(), Run.id.desc())
        )
        if run_id is not None:
            query = query.where(Run.id == run_id)
        return [
            RunInfo(
                id=run.id,
                name=run.name,
                status=RunStatus(run.status),
                algorithm=run.algorithm,
                model=run.model,
                seed=run.seed,
                total_steps=run.total_steps,
                last_step=run.last_step,
                created_at=run.created_at,
                started_at=run.started_at,
                finished_at=run.finished_at,
                error=run.error,
                last_reward=None if metric_id is None else _decode_metric(value, special),
            )
            for run, value, special, metric_id in session.execute(query)
        ]

    def runs(self) -> list[RunInfo]:
        """Every run, newest first, with its latest 'reward/mean'."""
        with self._read() as session:
            return self._run_infos(session)

    def run(self, run_id: int) -> RunInfo:
        with self._read() as session:
            found = self._run_infos(session, run_id)
        if not found:
            raise RunNotFound(run_id, self._shown_url)
        return found[0]

    def run_config(self, run_id: int) -> dict[str, Any]:
        with self._read() as session:
            text = session.scalar(select(Run.config_json).where(Run.id == run_id))
        if text is None:
            raise RunNotFound(run_id, self._shown_url)
        return json.loads(text)

    def metric_keys(self, run_id: int) -> list[str]:
        with self._read() as session:
            self._require_run(session, run_id)
            return list(
                session.scalars(
                    select(Metric.key)
                    .where(Metric.run_id == run_id)
                    .distinct()
                    .order_by(Metric.key)
                )
            )

    def metrics(
        self, run_id: int, since_step: int = -1, keys: Sequence[str] | None = None
    ) -> dict[str, MetricSeries]:
        """Points with step > since_step, by key; keys with no such points are left out.

        Polling with the last step already drawn fetches only what is new.
        """
        query = (
            select(Metric.key, Metric.step, Metric.value, Metric.special, Metric.wall_time)
            .where(Metric.run_id == run_id, Metric.step > since_step)
            .order_by(Metric.key, Metric.step)
        )
        if keys is not None:
            if not keys:
                return {}
            query = query.where(Metric.key.in_(list(keys)))
        with self._read() as session:
            self._require_run(session, run_id)
            rows = session.execute(query).all()
        series: dict[str, MetricSeries] = {}
        for key, group in itertools.groupby(rows, key=lambda row: row.key):
            points = list(group)
            series[key] = MetricSeries(
                steps=np.array([p.step for p in points], dtype=np.int64),
                values=np.array(
                    [_decode_metric(p.value, p.special) for p in points], dtype=np.float64
                ),
                wall_times=np.array([p.wall_time for p in points], dtype=np.float64),
            )
        return series

    def samples(
        self, run_id: int, offset: int = 0, limit: int = 100, step: int | None = None
    ) -> list[SampleRow]:
        """A page of samples ordered by (step, idx), optionally of one step only."""
        query = select(Sample).where(Sample.run_id == run_id)
        if step is not None:
            query = query.where(Sample.step == step)
        query = query.order_by(Sample.step, Sample.idx, Sample.id).offset(offset).limit(limit)
        with self._read() as session:
            self._require_run(session, run_id)
            return [
                SampleRow(
                    step=row.step,
                    idx=row.idx,
                    prompt=row.prompt,
                    completion=row.completion,
                    reward=row.reward,
                    components=json.loads(row.components_json),
                    tokens=_loads_optional(row.tokens_json),
                    logprobs=_loads_optional(row.logprobs_json),
                    kl=_loads_optional(row.kl_json),
                    advantages=_loads_optional(row.advantages_json),
                )
                for row in session.scalars(query)
            ]

    def sample_count(self, run_id: int, step: int | None = None) -> int:
        """How many samples a run (or one of its steps) holds, for paging."""
        query = select(func.count()).select_from(Sample).where(Sample.run_id == run_id)
        if step is not None:
            query = query.where(Sample.step == step)
        with self._read() as session:
            self._require_run(session, run_id)
            return int(session.scalar(query) or 0)

    def checkpoints(self, run_id: int) -> list[CheckpointInfo]:
        with self._read() as session:
            self._require_run(session, run_id)
            return [
                CheckpointInfo(step=row.step, path=row.path, created_at=row.created_at)
                for row in session.scalars(
                    select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step)
                )
            ]

    def last_checkpoint(self, run_id: int) -> CheckpointInfo | None:
        found = self.checkpoints(run_id)
        return found[-1] if found else None

    def logs(self, run_id: int, limit: int = 200) -> list[LogEntry]:
        """The newest `limit` lines, oldest first (the order a log view shows them)."""
        query = (
            select(LogLine.time, LogLine.level, LogLine.message)
            .where(LogLine.run_id == run_id)
            .order_by(LogLine.id.desc())
            .limit(limit)
        )
        with self._read() as session:
            self._require_run(session, run_id)
            rows = session.execute(query).all()
        return [LogEntry(time=row.time, level=row.level, message=row.message) for row in rows[::-1]]


class RunRecorder:
    """The trainer's buffered writer for one run: many calls, few transactions.

    `metrics`, `samples` and `log` only queue; a flush writes everything queued plus a
    heartbeat in one transaction. They flush by themselves once `flush_interval_s` has passed
    since the last flush or `max_pending` rows are waiting; nothing flushes in the
    background, so call `flush()` (or leave the `with` block) when a step ends.
    """

    def __init__(
        self,
        store: Store,
        run_id: int,
        flush_interval_s: float = 1.0,
        max_pending: int = 1000,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._metrics: list[MetricRow] = []
        self._samples: list[Mapping[str, Any]] = []
        self._logs: list[LogRow] = []
        self._pending = 0
        self._max_step: int | None = None
        self._last_flush = time.monotonic()

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        return self._pending

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
            self._logs.append((_now(), level, message))
            self._pending += 1
        self._maybe_flush()

    def flush(self) -> None:
        """Writes everything queued in one transaction; on failure it stays queued."""
        with self._lock:
            if self._pending:
                self.store.write_batch(
                    self.run_id,
                    metrics=self._metrics,
                    samples=self._samples,
                    logs=self._logs,
                    last_step=self._max_step,
                )
                self._metrics, self._samples, self._logs = [], [], []
                self._pending = 0
            self._last_flush = time.monotonic()

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
        self.flush()
