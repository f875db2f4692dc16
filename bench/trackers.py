"""What a tracker costs a training step: the same recipe with and without
`logging.report_to = "tensorboard"` (or any trackers named), each in its own process,
alternating, and the time the runner spends handing events to the trackers.

    python bench/trackers.py                      # tiny-random, 12 steps x 3 rounds
    python bench/trackers.py --model smollm2-135m-instruct --steps 4 --rounds 2

Two figures per case: the median seconds per step (steps 2.., step 1 warms caches), whose
difference is within the noise of a shared CPU, and the milliseconds per step spent
inside the trackers' calls (measured in the process, independent of the step's noise).
JSON to bench/results/trackers.json under the model's name, with the load average."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "trackers.json"
RECIPE = ROOT / "assets" / "recipes" / "tiny_smoke.toml"


def one_run(model: str, steps: int, report_to: list[str], folder: str) -> dict:
    """In this process: train and time each step and each call into the trackers."""
    from core.config import load_config, with_overrides
    from core.events import Metrics
    from core.runner import start_run
    from core.store import Store
    from core.trackers import TrackerSink

    spent = [0.0]
    original = TrackerSink.on_event

    def timed(self, event):
        start = time.perf_counter()
        original(self, event)
        spent[0] += time.perf_counter() - start

    TrackerSink.on_event = timed
    overrides = {"model.name": model, "training.steps": steps, "logging.report_to": report_to}
    overrides |= {"training.checkpoint_every": 0, "training.batch_size": 8}
    cfg = with_overrides(load_config(RECIPE), overrides)
    step_s: list[float] = []
    last = [None]

    def on_event(event):
        if isinstance(event, Metrics) and "time/update_s" in event.values:
            now = time.perf_counter()
            if last[0] is not None:
                step_s.append(now - last[0])
            last[0] = now

    with Store(f"sqlite:///{folder}/runs.db") as store:
        start_run(cfg, store, name="bench", on_event=on_event)
    return {"step_s": step_s, "tracker_ms_per_step": 1000 * spent[0] / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trackers", nargs="+", default=["tensorboard"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report_to = json.loads(args.child)
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(one_run(args.model, args.steps, report_to, folder)))
        return
    cases = {"none": [], "+".join(args.trackers): args.trackers}
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, report_to in cases.items():
            cmd = [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps)]
            done = subprocess.run(
                [*cmd, "--child", json.dumps(report_to)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            load.append(os.getloadavg()[0])
            print(name, runs[name][-1]["tracker_ms_per_step"], file=sys.stderr)
    summary = {
        name: {
            "median_s_per_step": statistics.median(s for r in rs for s in r["step_s"]),
            "median_tracker_ms_per_step": statistics.median(r["tracker_ms_per_step"] for r in rs),
            "s_per_step_by_round": [statistics.median(r["step_s"]) for r in rs],
        }
        for name, rs in runs.items()
    }
    base, traced = (summary[n]["median_s_per_step"] for n in cases)
    result = {
        "steps": args.steps,
        "rounds": args.rounds,
        "cases": summary,
        "ratio_s_per_step": traced / base,
        "load_average_1m": {"min": min(load), "max": max(load)},
        "cpus": os.cpu_count(),
    }
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data[args.model] = result
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
