"""Run a user's reward file in a separate worker process, kept warm between batches.

``SandboxedReward`` is called like the in-process reward
(``reward(prompts, completions, **columns)``), but the user's code runs in a
child process (``core.rewards.user_code.worker``) started with "spawn", so it inherits no
torch or CUDA state from the trainer and cannot take the trainer down with it:

* a batch that runs past ``time_limit_s`` is stopped (the worker is killed), and
  the message names the line it was stuck on and, for per-sample rewards, the
  sample;
* on Linux the worker's address space is capped at ``memory_limit_mb``, so an
  unbounded allocation ends in a ``MemoryError`` in the worker, not in the
  machine swapping;
* an exception, ``sys.exit()``, a crash or a killed worker, and a value that is
  not a finite number or a list of the wrong length, each become one
  ``RewardError`` naming the file, and the line and sample where known;
* ``print`` output is captured per batch (bounded, keeping the tail) and passed
  to ``on_output``; ``last_output`` holds what the last call printed.

After a timeout, a crash or running out of memory the worker is gone; the next
call starts a fresh one, which reads the file again. ``reload()`` restarts it
on purpose so that edited code is used.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import util as mp_util
from pathlib import Path
from typing import Any

from core.rewards.errors import RewardConfigError, RewardError, RewardSignatureError
from core.rewards.user_code import worker as worker_process
from core.rewards.user_code.loader import format_failure

DEFAULT_TIME_LIMIT_S = 30.0
DEFAULT_MEMORY_LIMIT_MB = 4096
DEFAULT_MAX_OUTPUT_CHARS = 20_000
# Importing a file that imports torch takes seconds: loading has its own, longer limit.
DEFAULT_LOAD_TIME_LIMIT_S = 120.0
# How long a hung worker gets to say which line it is on, and a closing one to exit.
_GRACE_S = 1.0


class SandboxedReward:
    """A user's reward file scored in a warm worker process, with time and memory limits.

    ``time_limit_s`` bounds one batch and ``memory_limit_mb`` the worker's
    address space on Linux (``None`` or 0: no limit); ``max_output_chars``
    bounds the ``print`` output kept per batch. ``name`` labels bad values
    ("reward 'name' returned nan for sample 2"); it defaults to the file's stem.
    ``function`` names the function in the file (default ``reward``).
    Calls are serialised; ``close()`` waits for a call in progress.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
        memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        on_output: Callable[[str], None] | None = None,
        *,
        name: str | None = None,
        load_time_limit_s: float | None = DEFAULT_LOAD_TIME_LIMIT_S,
        function: str = "reward",
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise RewardConfigError(f"reward file not found: {self.path}")
        self.name = name or self.path.stem
        self.function = function
        self.time_limit_s = time_limit_s
        self.memory_limit_mb = memory_limit_mb or None
        self.max_output_chars = max_output_chars
        self.load_time_limit_s = load_time_limit_s
        self.on_output = on_output
        self.last_output = ""
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """Process id of the running worker, or None when none is running."""
        worker = self._worker
        return worker.process.pid if worker is not None else None

    def start(self) -> None:
        """Start the worker now, if it is not running, and load the file.

        Raises ``RewardConfigError`` if the file does not load (syntax error, no
        ``reward`` function, an exception at import) and ``RewardError`` if the
        worker hangs or dies while loading it.
        """
        with self._lock:
            self.last_output = ""
            self._running()

    def reload(self) -> None:
        """Restart the worker so the file's current code is used; raises like ``start()``."""
        with self._lock:
            self.last_output = ""
            self._stop()
            self._running()

    def close(self) -> None:
        """Stop the worker. The object stays usable: a later call starts a fresh one."""
        with self._lock:
            self._stop()

    def __enter__(self) -> SandboxedReward:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self._worker is not None else "not running"
        return f"SandboxedReward({str(self.path)!r}, {state})"

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        """Score a batch in the worker: one finite float per completion, or ``RewardError``."""
        n = len(completions)
        with self._lock:
            self.last_output = ""
            try:
                worker = self._running()
            except RewardConfigError as exc:  # restarting after a crash, the file broke since
                raise RewardError(str(exc)) from exc
            try:
                worker.conn.send(("score", list(prompts), list(completions), dict(columns)))
                ready = worker.conn.poll(self.time_limit_s)
                kind, payload, output = worker.conn.recv() if ready else (None, None, "")
            except (OSError, EOFError):
                raise self._died(worker, f"while scoring a batch of {n}") from None
            if kind is None:
                raise self._timed_out(worker, n)
            self._emit(output)
            if kind == "ok":
                return payload
            if payload["restart"]:
                self._stop()
            error = RewardSignatureError if payload.get("signature") else RewardError
            raise error(
                payload["message"],
                component=payload["component"],
                sample_index=payload["sample_index"],
                lineno=payload["lineno"],
            )

    # --- the worker's life (callers hold self._lock) -----------------------------

    def _running(self) -> _Worker:
        """The live worker, started (and the file loaded) if there is none."""
        if self._worker is not None and not self._worker.process.is_alive():
            self._stop()  # died while idle
        if self._worker is None:
            self._worker = self._start()
        return self._worker

    def _start(self) -> _Worker:
        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe()
        where = ctx.Array("q", [-1, -1], lock=False)
        process = ctx.Process(
            target=worker_process.main,
            args=(
                child_conn,
                str(self.path),
                self.name,
                self.memory_limit_mb,
                self.max_output_chars,
                where,
                os.getpid(),
                self.function,
            ),
            name=f"rlstudio-reward-{self.path.name}",
        )
        with _bare_main_module():
            process.start()
        child_conn.close()  # so that this end reads EOF when the worker dies
        stop = mp_util.Finalize(self, _shutdown, args=(process, conn), exitpriority=10)
        worker = _Worker(process, conn, where, stop)
        try:
            ready = conn.poll(self.load_time_limit_s)
            kind, payload, output = conn.recv() if ready else (None, None, "")
        except (OSError, EOFError):
            raise self._died(worker, "while loading the file") from None
        if kind is None:
            worker.stop()
            raise RewardError(
                f"{self.path.name}: loading the file took longer than {self.load_time_limit_s:g} s"
            )
        self._emit(output)
        if kind != "ready":
            worker.stop()
            raise RewardConfigError(payload)
        return worker

    def _stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    def _timed_out(self, worker: _Worker, n: int) -> RewardError:
        line, sample = worker.locate(), worker.sample()
        worker.process.kill()
        self._stop()  # its group too (_shutdown)
        detail = f"took longer than {self.time_limit_s:g} s on a batch of {n}"
        message = format_failure(self.path, detail, line, sample)
        return RewardError(message, sample_index=sample, lineno=line)

    def _died(self, worker: _Worker, doing: str) -> RewardError:
        sample = worker.sample()
        worker.process.join(5.0)
        code = worker.process.exitcode
        if worker is self._worker:
            self._stop()
        else:
            worker.stop()
        if code is None:
            how = "its connection closed"
        elif code < 0:
            how = f"signal {_signal_name(-code)}"
        else:
            how = f"exit code {code}"
        message = format_failure(self.path, f"the reward worker died ({how}) {doing}", None, sample)
        return RewardError(message, sample_index=sample)

    def _emit(self, output: str) -> None:
        if output:
            self.last_output += output
            if self.on_output is not None:
                self.on_output(output)


@dataclass
class _Worker:
    """The parent's handle on one worker process."""

    process: Any  # multiprocessing's SpawnProcess
    conn: Any  # our end of the pipe
    where: Any  # shared [sample, line], -1 where unknown
    stop: mp_util.Finalize  # runs _shutdown once (also at exit, or when the reward is dropped)

    def sample(self) -> int | None:
        value = int(self.where[worker_process.SAMPLE])
        return value if value >= 0 else None

    def locate(self) -> int | None:
        """Ask a hung worker which line of the user's file it is on (None if it cannot say)."""
        if worker_process.WHERE_SIGNAL is None or not self.process.is_alive():
            return None
        with contextlib.suppress(OSError):
            os.kill(self.process.pid, worker_process.WHERE_SIGNAL)
        deadline = time.monotonic() + _GRACE_S
        while self.where[worker_process.LINE] < 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        line = int(self.where[worker_process.LINE])
        return line if line > 0 else None


def _shutdown(process: Any, conn: Any) -> None:
    """Ask the worker to exit, kill it if it does not, reap it, and end every process the
    reward code started (its process group)."""
    try:
        if process.is_alive():
            with contextlib.suppress(Exception):
                conn.send(("close",))
            process.join(_GRACE_S)
        if process.is_alive():
            process.kill()
        process.join(5.0)
    finally:
        _end_group(process.pid)
        with contextlib.suppress(Exception):
            conn.close()


def _end_group(pid: int | None) -> None:
    """SIGKILL to the worker's process group (the worker made it, with `os.setsid`): what
    reward code started outlives neither the run, nor a timeout, nor a crash, nor a stop."""
    if pid is None or not hasattr(os, "killpg"):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def _bare_main_module() -> Iterator[None]:
    """Start a worker without importing the parent's ``__main__`` into it.

    "spawn" re-imports the parent's main script or module in the child. The
    worker needs none of it, and the studio's or a notebook's main module would
    drag Qt or torch into every worker (slow, and counted against its memory
    limit). So the child is started while ``__main__`` is an empty module.
    """
    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
