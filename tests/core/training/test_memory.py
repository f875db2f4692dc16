"""The run's hold on freed CPU memory: reused while it trains, given back when it ends."""

from __future__ import annotations

import os
import resource
import sys

import pytest
import torch

from core.training.memory import _glibc, hold_freed_memory, peak_memory_mb

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _glibc() is None, reason="glibc's malloc only"
)
CPU = torch.device("cpu")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def faulted_mb(work) -> float:
    """Memory first touched (page faults) while `work` runs."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    work()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) * 4096 / 2**20


def a_step():
    """Like a training step's buffers: 32 tensors of 8 MB, written, then all freed."""
    tensors = [torch.empty(2**21) for _ in range(32)]
    for t in tensors:
        t.fill_(1.0)


def test_while_held_a_step_reuses_the_last_steps_memory_and_the_end_gives_it_back():
    assert faulted_mb(a_step) > 200  # glibc's default: the 256 MB come back from the kernel
    release = hold_freed_memory(CPU)
    try:
        for _ in range(4):  # glibc's alignment padding settles the layout in about 3 steps
            a_step()
        held_rss = rss_mb()
        assert faulted_mb(a_step) < 16
        assert faulted_mb(a_step) < 16
        assert rss_mb() < held_rss + 16
    finally:
        release()
    assert rss_mb() < held_rss - 192  # handed back when the run ends
    assert faulted_mb(a_step) > 200  # and the defaults are back


def test_releasing_twice_or_off_the_cpu_is_harmless():
    release = hold_freed_memory(CPU)
    release()
    release()
    hold_freed_memory(torch.device("meta"))()
    assert faulted_mb(a_step) > 200
    assert peak_memory_mb(CPU) > 0


def test_nested_holds_last_until_the_outer_one_ends():
    outer = hold_freed_memory(CPU)
    try:
        inner = hold_freed_memory(CPU)
        for _ in range(4):
            a_step()
        inner()
        assert faulted_mb(a_step) < 16
    finally:
        outer()
    assert faulted_mb(a_step) > 200
