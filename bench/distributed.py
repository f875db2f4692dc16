"""Samples per second of the same `rlstudio train` as 1 process and as 2 (torchrun, gloo).

Each configuration is a fresh `rlstudio train` (its own data folder and SQLite store) on
tiny-random; the rate comes from the stored per-step wall times after two warm-up steps,
so model loading and process start-up are left out: it shows the machinery's overhead
(sharding, the gradient all-reduce, the metrics gather), not the model's speed. The
machine is shared: each row records the load average, and a loaded machine hurts the
two-thread single process most (its threads wait on each other). On this
2-core CPU one process uses both cores by default; under torchrun each of the two gets
one (torchrun's OMP_NUM_THREADS=1), so "1 process, 1 thread" is the fair per-core row.

    python bench/distributed.py            # writes bench/results/distributed.json
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RECIPE = ROOT / "assets" / "recipes" / "tiny_smoke.toml"
STEPS, WARMUP, BATCH, NEW_TOKENS, REPEATS = 14, 2, 16, 16, 3

CASES = [
    ("1 process (default threads)", 1, {}),
    ("1 process, 1 thread", 1, {"OMP_NUM_THREADS": "1"}),
    ("2 processes (torchrun, gloo), 1 thread each", 2, {"OMP_NUM_THREADS": "1"}),
]


def one_run(nproc: int, env_extra: dict) -> dict:
    from core.store import Store

    with tempfile.TemporaryDirectory() as home:
        db = f"sqlite:///{home}/runs.db"
        train = [
            "-m", "core.cli", "train", str(RECIPE), "--db", db, "--steps", str(STEPS),
            "--set", f"training.batch_size={BATCH}",
            "--set", f"generation.max_new_tokens={NEW_TOKENS}",
            "--set", "training.checkpoint_every=0",
        ]  # fmt: skip
        if nproc == 1:
            cmd = [sys.executable, *train]
        else:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            cmd = [*launcher, "--nproc_per_node", str(nproc), *train]
        env = {
            **os.environ,
            "RLSTUDIO_HOME": home,
            "RLSTUDIO_DIST_BACKEND": "gloo",
            "PYTHONPATH": str(ROOT),
            **env_extra,
        }
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        total = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"{cmd} failed:\n{out.stderr[-3000:]}")
        with Store(db) as store:
            run = store.runs()[0]
            walls = store.metrics(run.id, keys=["reward/mean"])["reward/mean"].wall_times
    timed = walls[-1] - walls[WARMUP - 1]
    return {
        "samples_per_s": BATCH * (STEPS - WARMUP) / timed,
        "step_s": timed / (STEPS - WARMUP),
        "command_s": total,
    }


def main() -> None:
    rows = []
    for label, nproc, env in CASES:
        load_before = os.getloadavg()[0]
        runs = [one_run(nproc, env) for _ in range(REPEATS)]
        rate = statistics.median(r["samples_per_s"] for r in runs)
        row = {
            "case": label,
            "processes": nproc,
            "samples_per_s": round(rate, 2),
            "samples_per_s_each_run": [round(r["samples_per_s"], 2) for r in runs],
            "step_s": round(statistics.median(r["step_s"] for r in runs), 4),
            "command_s": round(statistics.median(r["command_s"] for r in runs), 1),
            # other work on this shared machine (1-minute load average, before and after)
            "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {
        "what": "rlstudio train on tiny-random (PPO): samples/s after 2 warm-up steps",
        "recipe": "assets/recipes/tiny_smoke.toml",
        "settings": {"steps": STEPS, "batch_size": BATCH, "max_new_tokens": NEW_TOKENS},
        "repeats": REPEATS,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU, shared",
        "command": "python bench/distributed.py",
        "results": rows,
    }
    out = ROOT / "bench" / "results" / "distributed.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
