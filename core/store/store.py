"""The run store: one database of runs, their metrics, samples, checkpoints and logs.

The trainer writes through a `RunRecorder` (batched, one transaction per flush); the studio
and the CLI read through the query methods, which hand back plain dataclasses and numpy
arrays so no ORM object ever leaves this package. SQLite is the default; any SQLAlchemy URL
works because queries use no dialect-specific SQL.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy import Engine, and_, bindparam, delete, func, insert, select
from sqlalchemy.orm import Session, aliased

from core.events import Sample as SampleEvent
from core.store.engine import (
    default_db_url,
    file_identity,
    file_problem,
    open_engine,
    opened_read_only,
    read_only_engine,
    require_current_schema,
    shown_url,
    upgrade,
)
from core.store.findings import RunFindings
from core.store.lifecycle import RunLifecycle
from core.store.records import (
    CheckpointInfo,
    LogEntry,
    LogRow,
    MetricRow,
    MetricSeries,
    RunInfo,
    RunNotFound,
    RunStatus,
    StoreFull,
    StoreReadOnly,
    decode_metric,
    dumps,
    dumps_optional,
    encode_metric,
    finite_or_none,
    loads_optional,
    utc_now,
)
from core.store.schema import Checkpoint, FindingRecord, LogLine, Metric, Run, Sample
from core.store.setting_changes import RunSettingChanges

REWARD_KEY = "reward/mean"
CLOCK_KEY = "time/update_s"  # every training step records it, with the training clock
_READ_ONLY_REASONS = {
    "ro": "the database file cannot be written",
    "immutable": "its folder cannot be written, so it is read as an unchanging file",
}


class Store(RunLifecycle, RunFindings, RunSettingChanges):
    """Opens (and migrates) the database; writes runs and answers queries about them."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_db_url()
        self._engine = open_engine(self.url)
        self._reader = read_only_engine(self._engine)
        self._shown_url = shown_url(self.url)
        self._opened_file: tuple[int, int] | None = None
        mode = opened_read_only(self._engine)
        if mode is not None:  # a read-only folder or mount: read it as it is, write nothing
            self.read_only_reason = _READ_ONLY_REASONS[mode]
            self.backup = None
            require_current_schema(self._engine, self._shown_url)
            return
        # set when this open migrated a SQLite file: the copy of it as it was
        self.backup = upgrade(self._engine)
        # the SQLite file as opened: writers check it is still that file (file_problem)
        self._opened_file = file_identity(self._engine)
        try:
            self.mark_interrupted()
        except StoreReadOnly as refused:  # it can still be listed; a write says why it cannot
            self.read_only_reason = refused.reason
        except StoreFull:  # it can still be read; they are marked when it opens with space
            pass

    @property
    def read_only(self) -> bool:
        """True when this store can be read and not written (`read_only_reason` says why)."""
        return self.read_only_reason is not None

    def file_problem(self) -> str | None:
        """None while the SQLite file this store opened is still at its path; else what
        became of it ("deleted", "replaced by another file"). None for a server."""
        return file_problem(self._engine, self._opened_file)

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
                value, special = encode_metric(raw)
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
                    "reward": finite_or_none(row.get("reward")),
                    "components_json": dumps(row.get("components") or {}),
                    "tokens_json": dumps_optional(row.get("tokens")),
                    "logprobs_json": dumps_optional(row.get("logprobs")),
                    "kl_json": dumps_optional(row.get("kl")),
                    "advantages_json": dumps_optional(row.get("advantages")),
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
                session.add(Checkpoint(run_id=run_id, step=step, path=path, created_at=utc_now()))
            else:
                existing.path = path
                existing.created_at = utc_now()

    def delete_after(self, run_id: int, step: int) -> None:
        """Forgets everything past `step`, so a run resumed from that checkpoint starts clean."""
        with self._write() as session:
            run = self._run_row(session, run_id)
            for model in (Metric, Sample, Checkpoint, FindingRecord):
                session.execute(delete(model).where(model.run_id == run_id, model.step > step))
            run.last_step = min(run.last_step, step)

    def log(self, run_id: int, level: str, message: str) -> None:
        with self._write() as session:
            self._require_run(session, run_id)
            self._add_logs(session, run_id, [(utc_now(), level, message)])

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
        clock = aliased(Metric)  # the training clock at the run's last step (a unique key)
        query = (
            select(Run, Metric.value, Metric.special, Metric.id, clock.wall_time)
            .outerjoin(latest, latest.c.run_id == Run.id)
            .outerjoin(
                Metric,
                and_(
                    Metric.run_id == Run.id,
                    Metric.key == REWARD_KEY,
                    Metric.step == latest.c.step,
                ),
            )
            .outerjoin(
                clock,
                and_(clock.run_id == Run.id, clock.step == Run.last_step, clock.key == CLOCK_KEY),
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
                last_reward=None if metric_id is None else decode_metric(value, special),
                app_version=run.app_version,
                parent_run_id=run.parent_run_id,
                training_seconds=wall_time,
            )
            for run, value, special, metric_id, wall_time in session.execute(query)
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
                    [decode_metric(p.value, p.special) for p in points], dtype=np.float64
                ),
                wall_times=np.array([p.wall_time for p in points], dtype=np.float64),
            )
        return series

    def samples(
        self, run_id: int, offset: int = 0, limit: int = 100, step: int | None = None
    ) -> list[SampleEvent]:
        """A page of samples ordered by (step, idx), optionally of one step only."""
        query = select(Sample).where(Sample.run_id == run_id)
        if step is not None:
            query = query.where(Sample.step == step)
        query = query.order_by(Sample.step, Sample.idx, Sample.id).offset(offset).limit(limit)
        with self._read() as session:
            self._require_run(session, run_id)
            return [
                SampleEvent(
                    step=row.step,
                    idx=row.idx,
                    prompt=row.prompt,
                    completion=row.completion,
                    reward=row.reward,
                    components=json.loads(row.components_json),
                    tokens=loads_optional(row.tokens_json),
                    logprobs=loads_optional(row.logprobs_json),
                    kl=loads_optional(row.kl_json),
                    advantages=loads_optional(row.advantages_json),
                )
                for row in session.scalars(query)
            ]

    def sample_count(self, run_id: int, step: int | None = None, up_to: int | None = None) -> int:
        """How many samples a run (or one of its steps, or its steps up to one) holds."""
        query = select(func.count()).select_from(Sample).where(Sample.run_id == run_id)
        if step is not None:
            query = query.where(Sample.step == step)
        if up_to is not None:
            query = query.where(Sample.step <= up_to)
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

    def newest_checkpoint_on_disk(self, run_id: int) -> CheckpointInfo | None:
        """The newest recorded checkpoint whose folder is still there (resume, evaluate and
        export use it; a folder deleted by hand is passed over)."""
        return next((c for c in reversed(self.checkpoints(run_id)) if Path(c.path).is_dir()), None)

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
