"""The trainer's buffered writer: queues a run's metrics, samples and logs, flushes in batches."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from core.store.records import LogRow, MetricRow, utc_now

if TYPE_CHECKING:
    from core.store.store import Store


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
            self._logs.append((utc_now(), level, message))
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
