"""The reward worker process: loads one user reward file, then scores batches.

``SandboxedReward`` starts ``main`` in a fresh interpreter and talks to it over a
pipe. Requests are ``("score", prompts, completions, columns)`` or ``("close",)``;
replies are ``(kind, payload, output)`` where ``output`` is what the code printed:

* ``("ready", None, output)`` once the file has loaded, or
  ``("load_error", message, output)`` if it did not (the worker then exits);
* ``("ok", scores, output)``: ``scores`` already checked, plain floats;
* ``("error", {"message", "component", "sample_index", "lineno", "restart", "signature"},
  output)``: ``restart`` means the worker exits after replying (out of memory);
  ``signature`` that the function's parameters cannot take the batch.

Two numbers are shared with the parent for when the worker cannot reply: the
sample a per-sample reward is scoring, and the line of the user's file it was
on when the parent signalled it (``SIGUSR1``, sent before killing a batch that
ran past its time limit).
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.rewards.errors import RewardConfigError, RewardError, RewardSignatureError
from core.rewards.scores import validate_scores
from core.rewards.user_code.loader import call_reward, format_failure, load_reward_file

# Indices into the shared array of two numbers (-1: unknown).
SAMPLE, LINE = 0, 1
WHERE_SIGNAL = getattr(signal, "SIGUSR1", None)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class TailBuffer(io.TextIOBase):
    """A text stream keeping only the last ``limit`` characters, counting what it drops."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # as sys.stdout does, inside the user's code
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._parts.append(text)
        self._size += len(text)
        if self._size > 2 * self.limit + 4096:
            self._keep(self.limit)
        return len(text)

    def _keep(self, n: int) -> str:
        text = "".join(self._parts)
        tail = text[len(text) - n :] if n > 0 else ""
        self._dropped += len(text) - len(tail)
        self._parts, self._size = [tail], len(tail)
        return tail

    def getvalue(self) -> str:
        if self._dropped + self._size <= self.limit:
            return "".join(self._parts)
        note = "[output cut: {:,} earlier characters dropped]\n"
        tail = self._keep(max(0, self.limit - len(note.format(self._dropped + self._size))))
        return note.format(self._dropped) + tail


def main(
    conn: Any,
    path: str,
    name: str,
    memory_limit_mb: int | None,
    max_output_chars: int,
    where: Any,
    parent_pid: int,
    function: str = "reward",
) -> None:
    """Entry point of the worker process; ``function`` names the reward in the file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal is the trainer's
    if hasattr(os, "setsid"):
        # A group of its own: what the reward code starts (a subprocess, a pool) is in it,
        # and the parent ends the whole group with the worker (sandbox._end_group).
        os.setsid()
    _exit_with_parent(parent_pid)  # before the memory limit: a thread needs address space
    limit_mb = memory_limit_mb if _limit_memory(memory_limit_mb) else None
    out = TailBuffer(max_output_chars)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            reward = load_reward_file(path, function)
    except BaseException as exc:  # also sys.exit() at import time
        if isinstance(exc, RewardConfigError):
            message = str(exc)
        else:
            message = f"reward file {path} failed to load: {type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            conn.send(("load_error", message, out.getvalue()))
        return
    if WHERE_SIGNAL is not None:
        signal.signal(WHERE_SIGNAL, _note_line(reward.path, where))
    conn.send(("ready", None, out.getvalue()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if request[0] != "score":
            return
        out = TailBuffer(max_output_chars)
        reply = _score(reward, name, request[1:], out, where, limit_mb)
        conn.send(reply)
        if reply[0] == "error" and reply[1]["restart"]:
            return


def _score(
    reward: Any, name: str, batch: tuple, out: TailBuffer, where: Any, limit_mb: int | None
) -> tuple[str, Any, str]:
    """Score one batch with its output captured; returns the reply for the parent."""
    prompts, completions, columns = batch
    where[SAMPLE], where[LINE] = -1, -1
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            raw = call_reward(
                reward,
                prompts,
                completions,
                columns,
                catch=(BaseException,),
                on_sample=lambda i: where.__setitem__(SAMPLE, i),
            )
        return "ok", validate_scores(name, raw, len(completions)), out.getvalue()
    except RewardError as err:
        info = {
            "message": str(err),
            "component": err.component,
            "sample_index": err.sample_index,
            "lineno": err.lineno,
            "restart": isinstance(err.__cause__, MemoryError),
            "signature": isinstance(err, RewardSignatureError),
        }
    except MemoryError:  # while reporting the user's error, or outside their code
        sample = where[SAMPLE] if where[SAMPLE] >= 0 else None
        info = {"component": None, "sample_index": sample, "lineno": None, "restart": True}
        info["signature"] = False
    if info["restart"]:  # out of memory: the worker exits after replying
        gc.collect()  # the traceback is gone: free what the user's code had allocated
        if limit_mb:
            detail = f"MemoryError: the reward used more than the worker's {limit_mb} MB limit"
        else:
            detail = "MemoryError: the reward ran out of memory"
        info["message"] = format_failure(reward.path, detail, info["lineno"], info["sample_index"])
    return "error", info, out.getvalue()


def _note_line(path: Path, where: Any):
    """A signal handler that records the line of ``path`` the main thread is running."""
    target = os.path.normcase(str(path))

    def handler(signum: int, frame: Any) -> None:
        while frame is not None:
            if os.path.normcase(os.path.abspath(frame.f_code.co_filename)) == target:
                where[LINE] = frame.f_lineno
                return
            frame = frame.f_back
        where[LINE] = 0  # answered, but not inside the user's file

    return handler


def _limit_memory(memory_limit_mb: int | None) -> bool:
    """Cap this process's address space (Linux); returns whether a limit was set."""
    if not memory_limit_mb or not sys.platform.startswith("linux"):
        return False
    import resource

    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_limit_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        return False
    return True


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the trainer goes away, even while user code is busy (no orphans).

    On Linux the kernel kills this process when its parent dies (the parent-death signal),
    which also ends a long C call such as ``sum(range(10**10))`` or a catastrophic regex,
    that holds the GIL and never lets a thread run. (The signal follows the parent's
    thread that started the worker: the sandbox starts a fresh worker when an idle one
    has gone.) Everywhere, a thread waits on multiprocessing's handle on the parent (a
    pipe that closes, a process handle on Windows) and ends this process when it goes:
    that covers Python code and calls that release the GIL.
    """
    if _die_with_parent() and os.getppid() != parent_pid:
        os._exit(0)  # the parent died before the signal was set: nobody would send it
    parent = multiprocessing.parent_process()

    def watch() -> None:
        if parent is not None:
            parent.join()
        else:  # not started by multiprocessing: poll
            while os.getppid() == parent_pid:
                time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; returns whether it will."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
