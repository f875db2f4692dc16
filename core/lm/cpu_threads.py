"""How many CPU threads sampling takes on cores the user shares with other work.

A decode step is dozens of small parallel regions (one per linear), each ending at an
OpenMP barrier. When another process holds one of the cores, the thread that shares it
arrives late at every barrier while the others spin: on a 2-core machine beside one busy
process our decoding ran 4.3x slower on 2 threads and 1.6x slower on 1 (py-spy: 61% of
the samples in libgomp; bench/rollout_micro.py, README). So before each rollout the
cores other processes kept busy since the last one are measured (Linux's /proc/stat less
this process's own CPU time), and sampling takes the cores left, never more than torch's
count. Elsewhere (no /proc) it keeps torch's count.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def choose_threads(wanted: int, usable: int, others_busy: float) -> int:
    """The threads for the cores others leave free: at least 1, at most `wanted`."""
    free = usable - max(0.0, others_busy)
    return max(1, min(wanted, int(free + 0.5)))


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(every CPU's busy seconds, their total seconds, this process's CPU seconds)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    total, idle = sum(ticks), ticks[3] + ticks[4]  # idle and iowait
    own = os.times()
    return (total - idle) / _TICKS, total / _TICKS, own.user + own.system


class CoreWatch:
    """Measures the cores other processes keep busy, between calls of `threads()`."""

    def __init__(self, wanted: int | None = None, probe_s: float = 0.25) -> None:
        self.wanted = wanted or torch.get_num_threads()
        self.cpus = os.cpu_count() or 1
        affinity = getattr(os, "sched_getaffinity", None)
        self.usable = len(affinity(0)) if affinity else self.cpus
        self.probe_s = probe_s
        self.last = _cpu_seconds()
        self.chosen = self.wanted
        self.others_busy = 0.0

    def measure(self) -> float | None:
        """Cores busy with other processes since the last call (None: cannot tell here)."""
        now = _cpu_seconds()
        if now is None or self.last is None:
            return None
        busy, total, own = (a - b for a, b in zip(now, self.last))
        elapsed = total / self.cpus
        if elapsed < self.probe_s / 2:  # too short to say (the first call): probe briefly
            time.sleep(self.probe_s)
            return self.measure()
        self.last = now
        return max(0.0, busy - own) / elapsed

    def threads(self) -> tuple[int, str | None]:
        """This rollout's threads, and a line for the log when the choice changed."""
        others = self.measure()
        if others is None:
            return self.wanted, None
        self.others_busy = others
        chosen = choose_threads(self.wanted, self.usable, others)
        if chosen == self.chosen:
            return chosen, None
        self.chosen = chosen
        return chosen, (
            f"sampling on {chosen} of {self.wanted} threads: other processes kept "
            f"{others:.1f} of {self.usable} cores busy"
        )


@contextmanager
def torch_threads(n: int):
    """torch's intra-op threads are `n` within the block."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FixedThreads:
    """A count the user set (generation.sampling_threads), or torch's off the CPU."""

    def __init__(self, n: int) -> None:
        self.n = n

    def threads(self) -> tuple[int, str | None]:
        return self.n, None


def sampling_threads(device: torch.device, setting: int) -> CoreWatch | FixedThreads:
    """generation.sampling_threads: a fixed count, or (0) measured before each rollout."""
    if device.type != "cpu":
        return FixedThreads(torch.get_num_threads())
    return FixedThreads(setting) if setting else CoreWatch()
