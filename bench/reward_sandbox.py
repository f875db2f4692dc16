"""What the reward sandbox costs: one batch of 16 scored through `SandboxedReward` (a warm
worker process) against the same file called in-process, plus starting a worker.

Median over many batches, for the shipped per-sample reward (letter_e.py) and a batched
one. Writes bench/results/reward_sandbox.json and prints a table.

    python bench/reward_sandbox.py [--batches 2000] [--batch-size 16] [--chars 400]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

BATCHED = """
def reward(prompts, completions, **columns):
    return [completion.count("e") / max(len(completion), 1) for completion in completions]
"""


def per_batch(fn, prompts: list[str], completions: list[str], batches: int) -> list[float]:
    times = []
    for _ in range(batches):
        started = time.perf_counter()
        fn(prompts, completions)
        times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p90_us": ordered[int(0.9 * (len(ordered) - 1))] * 1e6,
    }


def measure(path: Path, batches: int, size: int, chars: int) -> dict:
    from core.rewards import SandboxedReward, load_reward_file

    prompts = [f"Prompt number {i}: tell me a story." for i in range(size)]
    base = "Once upon a time there were seven elephants in a tree. "
    completions = [(base * (chars // len(base) + 1))[:chars] for _ in range(size)]
    direct = load_reward_file(path)
    with SandboxedReward(path) as sandboxed:
        sandboxed.start()
        assert sandboxed(prompts, completions) == [float(x) for x in direct(prompts, completions)]
        warmup = max(10, batches // 20)
        per_batch(direct, prompts, completions, warmup)
        per_batch(sandboxed, prompts, completions, warmup)
        # Interleave the two so that load on the machine hits both alike.
        inproc, sandbox = [], []
        for _ in range(10):
            inproc += per_batch(direct, prompts, completions, batches // 10)
            sandbox += per_batch(sandboxed, prompts, completions, batches // 10)
        starts = []
        for _ in range(5):
            started = time.perf_counter()
            sandboxed.reload()  # stop the worker, start a fresh one, load the file
            starts.append(time.perf_counter() - started)
    a, b = summary(inproc), summary(sandbox)
    return {
        "reward": path.name,
        "batch_size": size,
        "completion_chars": chars,
        "batches": len(inproc),
        "in_process": a,
        "sandboxed": b,
        "overhead_median_us": b["median_us"] - a["median_us"],
        "worker_start_median_ms": statistics.median(starts) * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--chars", type=int, default=400, help="characters per completion")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        batched = Path(folder) / "letter_e_batched.py"
        batched.write_text(BATCHED.lstrip())
        for path in (ROOT / "assets" / "rewards" / "letter_e.py", batched):
            results.append(measure(path, args.batches, args.batch_size, args.chars))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "command": "python bench/reward_sandbox.py " + " ".join(sys.argv[1:]),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reward_sandbox.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| reward | batch | in-process µs | sandboxed µs | overhead µs | worker start ms |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['reward']} | {r['batch_size']} x {r['completion_chars']} chars | "
            f"{r['in_process']['median_us']:.0f} | {r['sandboxed']['median_us']:.0f} | "
            f"{r['overhead_median_us']:.0f} | {r['worker_start_median_ms']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
