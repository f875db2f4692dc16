"""Background CPU load for benchmarks, and the facts a result needs to be read on another
machine: the CPU's model, its instruction sets, torch's threads and the load around it.

A user's laptop is rarely idle, and in the studio the window shares the process with the
training thread, so a speed-up is judged idle and under a known load. `hogs(n)` starts n
processes that each spin a fixed, seeded busy loop (pure arithmetic, no memory traffic to
speak of) and stops them when the block ends, however it ends.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from contextlib import contextmanager

# A seeded linear congruential generator in a loop: the same work on every machine.
_BUSY = "x = {seed}\nwhile True:\n    x = (x * 1103515245 + 12345) % 2147483648\n"
# The instruction sets that decide which kernels torch and oneDNN pick.
_ISA = ("avx2", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


@contextmanager
def hogs(n: int, seed: int = 0):
    """n busy processes for the length of the block (none when n is 0)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", _BUSY.format(seed=seed + i)]) for i in range(n)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(load: int = 0) -> dict:
    """What a reader needs to compare this result with another machine's."""
    import torch

    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "isa": [name for name in _ISA if name in flags],
        # what torch dispatches to: an AVX2 run on an AVX-512 machine says avx2 here
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "(all)"),
        "torch_threads": torch.get_num_threads(),
        "background_load": load,
        "loadavg": list(os.getloadavg()),
        "torch": torch.__version__,
    }


# An AVX2-only CPU, as torch and oneDNN see one: both pick their AVX2 kernels. The cores,
# caches and memory stay this machine's, so this isolates the kernels, not the machine.
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
