"""The store's write rate: metric values per second written through `RunRecorder`, with one
commit per step, batched (many steps per commit), and one commit per step beside a reader
process that queries the same SQLite file in a tight loop (the studio's charts, at worst).

    python bench/store_writes.py --label before   # JSON to bench/results/store_writes.json

Each case runs `--repeats` times on a fresh SQLite file; the medians and the ratios to the
per-step rate are kept under the label, with the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.store import RunRecorder, Store  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "store_writes.json"
KEYS = [f"metric/{i:02d}" for i in range(30)]  # about what a PPO step logs


def _new_run(store: Store) -> int:
    return store.create_run(
        name="bench", config={}, algorithm="ppo", model="tiny-random", seed=0, total_steps=0
    )


def _write(url: str, steps: int, steps_per_commit: int) -> float:
    """Metric values per second for `steps` steps of len(KEYS) values."""
    with Store(url) as store:
        run_id = _new_run(store)
        recorder = RunRecorder(store, run_id, flush_interval_s=3600, max_pending=10**9)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            recorder.metrics(step, float(step), {k: step * 0.001 + i for i, k in enumerate(KEYS)})
            if step % steps_per_commit == 0:
                recorder.flush()
        recorder.close()
        seconds = time.perf_counter() - start
    return steps * len(KEYS) / seconds


def _reader(url: str, stop, reads) -> None:
    """Reads what the studio reads, as fast as it can, until told to stop."""
    with Store(url) as store:
        n = 0
        while not stop.is_set():
            for run in store.runs():
                store.metrics(run.id, keys=KEYS[:4])
            n += 1
        reads.value = n


def _beside_reader(url: str, steps: int) -> tuple[float, float]:
    with Store(url) as store:
        _new_run(store)  # something to read from the start
    ctx = mp.get_context("spawn")
    stop, reads = ctx.Event(), ctx.Value("q", 0)
    reader = ctx.Process(target=_reader, args=(url, stop, reads))
    reader.start()
    time.sleep(1.0)  # the reader is up and reading
    start = time.perf_counter()
    rate = _write(url, steps, 1)
    seconds = time.perf_counter() - start
    stop.set()
    reader.join(30)
    return rate, reads.value / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="e.g. before / after")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50, help="steps per commit, batched")
    args = parser.parse_args()
    cases: dict[str, list[float]] = {"per_step": [], "batched": [], "beside_reader": []}
    reads: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            url = f"sqlite:///{tmp}/bench-{i}.db"
            cases["per_step"].append(_write(url, args.steps, 1))
            cases["batched"].append(_write(url, args.steps * 4, args.batch))
            rate, read_rate = _beside_reader(f"sqlite:///{tmp}/reader-{i}.db", args.steps)
            cases["beside_reader"].append(rate)
            reads.append(read_rate)
    medians = {k: statistics.median(v) for k, v in cases.items()}
    result = {
        "values_per_step": len(KEYS),
        "steps": args.steps,
        "repeats": args.repeats,
        "steps_per_commit_batched": args.batch,
        "median_values_per_s": {k: round(v) for k, v in medians.items()},
        "runs_values_per_s": {k: [round(x) for x in v] for k, v in cases.items()},
        "ratio_to_per_step": {k: round(v / medians["per_step"], 2) for k, v in medians.items()},
        "reader_queries_per_s": round(statistics.median(reads), 1),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "cpus": os.cpu_count(),
        "commit": os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip(),
    }
    saved = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    saved[args.label] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    print(json.dumps({args.label: result}, indent=2))


if __name__ == "__main__":
    main()
