"""Sampling takes the cores other processes leave free, and packs its weights only on CPUs
where packing was measured to pay."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from core.events import Log, Metrics
from core.lm import packed_linear
from core.lm.cpu_threads import CoreWatch, choose_threads, sampling_threads, torch_threads
from core.lm.packed_linear import packed_linears, packing_pays
from core.training.loop import train
from tests.core.helpers import tiny_config

USABLE = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
BUSY = "x = 1\nwhile True:\n    x = (x * 1103515245 + 12345) % 2147483648\n"
needs_two_cores = pytest.mark.skipif(
    USABLE < 2 or not os.path.exists("/proc/stat"), reason="needs 2 cores and /proc/stat"
)


@pytest.fixture
def busy_process():
    """Another process holding one core, as a user's other work would."""
    hog = subprocess.Popen([sys.executable, "-c", BUSY])
    time.sleep(0.3)  # started and spinning
    yield hog
    hog.kill()
    hog.wait()


@pytest.mark.parametrize(
    ("wanted", "usable", "others", "threads"),
    [
        (2, 2, 0.0, 2),
        (2, 2, 0.4, 2),  # 1.6 cores free: both threads
        (2, 2, 0.6, 1),
        (2, 2, 1.0, 1),
        (2, 2, 7.0, 1),  # never fewer than one
        (4, 4, 1.2, 3),
        (8, 16, 3.0, 8),  # never more than torch's count
        (2, 2, -0.1, 2),
    ],
)
def test_the_threads_are_the_cores_left_free(wanted, usable, others, threads):
    assert choose_threads(wanted, usable, others) == threads


@needs_two_cores
def test_a_busy_process_is_seen_and_sampling_takes_the_cores_it_leaves(busy_process):
    watch = CoreWatch(wanted=USABLE)
    time.sleep(1.0)  # the busy process keeps its core while this process idles
    threads, note = watch.threads()
    assert watch.others_busy >= 0.7, watch.others_busy
    assert threads < USABLE
    assert note and f"sampling on {threads} of {USABLE} threads" in note
    assert "other processes kept" in note
    assert watch.threads()[1] is None  # the same choice again is not said again


@pytest.mark.parametrize(
    ("later", "others"),
    [
        ((101.0, 402.0, 51.0), 0.0),  # all the busy second was this process's own
        ((101.8, 402.0, 50.9), 0.9),
        ((101.0, 402.0, 50.0), 1.0),  # this process idle, another on a whole core
    ],
)
def test_others_are_every_busy_core_less_this_process_own_time(monkeypatch, later, others):
    """(busy, total over both CPUs, own) seconds by hand: one second passes on 2 CPUs."""
    from core.lm import cpu_threads

    readings = iter([(100.0, 400.0, 50.0), later])
    monkeypatch.setattr(cpu_threads, "_cpu_seconds", lambda: next(readings))
    monkeypatch.setattr(cpu_threads.os, "cpu_count", lambda: 2)
    assert CoreWatch(wanted=2).measure() == pytest.approx(others)


def test_threads_are_set_for_the_block_and_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_set_count_is_kept_and_off_the_cpu_torch_s():
    assert sampling_threads(torch.device("cpu"), 3).threads() == (3, None)
    assert sampling_threads(torch.device("meta"), 0).threads()[0] == torch.get_num_threads()
    assert isinstance(sampling_threads(torch.device("cpu"), 0), CoreWatch)


@needs_two_cores
def test_a_run_beside_a_busy_process_samples_on_fewer_threads_and_says_so(busy_process):
    cfg = tiny_config({"training.steps": 2, "training.checkpoint_every": 0})
    events = list(train(cfg))
    assert events[-1].state == "completed"
    notes = [e.message for e in events if isinstance(e, Log) and "sampling on" in e.message]
    threads = [e.values["perf/sampling_threads"] for e in events if isinstance(e, Metrics)]
    if torch.get_num_threads() > 1:
        assert notes and "other processes kept" in notes[0], notes
        assert min(threads) < torch.get_num_threads(), threads


@pytest.mark.parametrize(
    ("capability", "isa", "pays"),
    [
        ("AVX512", None, True),
        ("AVX512", "AVX512_CORE_AMX", True),
        ("AVX2", None, False),  # measured 1.1-1.2x slower there
        ("AVX512", "AVX2", False),  # oneDNN held to AVX2: an AVX2 CPU's kernels
        ("DEFAULT", None, False),
    ],
)
def test_packing_only_where_it_was_measured_to_pay(capability, isa, pays):
    assert packing_pays(capability, isa) is pays


def test_an_avx2_cpu_samples_on_plain_weights_and_the_run_says_so(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    lm = nn.Sequential(nn.Linear(8, 8))
    with packed_linears(lm, 4, torch.float32):
        assert "forward" not in lm[0].__dict__  # torch's own linear
    cfg = tiny_config({"training.steps": 1, "training.checkpoint_every": 0})
    logs = [e.message for e in train(cfg) if isinstance(e, Log)]
    assert any("AVX2 kernels: sampling uses the plain float32 weights" in m for m in logs), logs


@pytest.mark.skipif(not packed_linear.available(torch.device("cpu")), reason="no oneDNN")
def test_an_avx512_cpu_samples_on_packed_weights(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    lm = nn.Sequential(nn.Linear(8, 8))
    with packed_linears(lm, 4, torch.float32):
        assert "forward" in lm[0].__dict__
    assert "forward" not in lm[0].__dict__
