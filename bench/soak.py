"""A soak of the store: one tiny-random run trained by real `rlstudio` processes, SIGKILLed
every `--kill-every` steps (give or take a fifth) and resumed from its newest checkpoint,
while a reader process polls the store as the studio follows a run (its metrics since the
last step drawn, its new samples, the runs list) four times a second.

    python bench/soak.py                  # 100 steps, 3 kills: JSON to bench/results/soak.json
    python bench/soak.py --steps 3000 --kill-every 300 --label long   # a machine to itself

The defaults fit in about ten minutes on a shared 2-CPU machine (tiny-random took 3-5 s
a step there at load 10-14); a few thousand steps need a machine to themselves.
At the end every step must have its metrics and its samples exactly once (a killed
segment's steps past its checkpoint are trained again, their rows replaced): rows lost
and rows doubled must be 0, and so must "database is locked" anywhere (trainer or reader).
The write rate is the rows in the store over the seconds spent training: what the run
asks of the store, not what the store can take (`bench/store_writes.py` measures that).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.store import Store  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "soak.json"
RECIPE = ROOT / "assets" / "recipes" / "tiny_smoke.toml"
LOCKED = "database is locked"
# The smallest steps tiny-random takes: the soak is about the store, not the model.
SETTINGS = (
    "training.batch_size=2",
    "generation.max_new_tokens=2",
    "algorithm.epochs=1",
    "algorithm.minibatches=1",
    "logging.samples_per_step=1",
)


def _reader(url: str, stop, counts) -> None:
    """The studio's follower, four times a second: new metrics and samples of the newest
    run, and the runs list. Counts polls and errors (by their first line)."""
    with Store(url) as store:
        done, seen = -1, 0
        while not stop.wait(0.25):
            try:
                runs = store.runs()
                if runs:
                    series = store.metrics(runs[0].id, since_step=done)
                    if "reward/mean" in series:
                        done = int(series["reward/mean"].steps[-1])
                    seen += len(store.samples(runs[0].id, offset=seen, limit=500))
                counts["polls"] = counts.get("polls", 0) + 1
            except Exception as error:  # counted, and the poll goes on as the studio's does
                text = str(error).strip().splitlines()[0][:160]
                counts[text] = counts.get(text, 0) + 1


def _cli(db: str, log, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--db", db, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def _segment(store: Store, proc: subprocess.Popen, kill_at: int | None) -> tuple[str, float]:
    """Waits for the process to end, or SIGKILLs it once the run has passed `kill_at`."""
    start = time.monotonic()
    while proc.poll() is None:
        runs = store.runs()
        if kill_at is not None and runs and runs[0].last_step >= kill_at:
            time.sleep(random.uniform(0, 0.5))  # mid-step or mid-write, wherever it lands
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "killed", time.monotonic() - start
        time.sleep(0.1)
    return f"exit {proc.returncode}", time.monotonic() - start


def _train(store: Store, db: str, log, args) -> list[dict]:
    """The run from step 0 to `--steps`, killed every `--kill-every` steps (give or take),
    each time resumed from its newest checkpoint."""
    segments = []
    first = ["train", str(RECIPE), "--steps", str(args.steps), "--name", "soak"]
    first += ["--set", f"training.checkpoint_every={args.checkpoint_every}"]
    for setting in SETTINGS:
        first += ["--set", setting]
    command = first
    while True:
        info = store.runs()[0] if store.runs() else None
        at = info.last_step if info is not None else 0
        kill_at = at + args.kill_every + random.randint(-args.kill_every // 5, args.kill_every // 5)
        kill_at = kill_at if kill_at < args.steps - args.kill_every // 4 else None
        how, seconds = _segment(store, _cli(db, log, *command), kill_at)
        info = store.runs()[0]
        segments.append({"ended": how, "seconds": round(seconds, 1), "last_step": info.last_step})
        print(f"segment {len(segments)}: {how} at step {info.last_step} ({seconds:.0f} s)")
        if how != "killed":
            return segments
        command = ["resume", str(info.id)]


def _tally(store: Store, steps: int) -> dict:
    """What the store holds against what a run of `steps` steps records."""
    run = store.runs()[0]
    series = store.metrics(run.id)
    samples = store.samples(run.id, limit=10**7)
    expected_steps = set(range(1, steps + 1))
    metric_rows = sum(len(s.steps) for s in series.values())
    lost = doubled = 0
    every_step = [key for key, s in series.items() if s.steps[0] == 1]  # what step 1 logged
    for key, s in series.items():
        present = s.steps.tolist()
        if key in every_step:
            lost += len(expected_steps - set(present))
        doubled += len(present) - len(set(present))
    pairs = [(s.step, s.idx) for s in samples]
    lost += len(expected_steps - {step for step, _idx in pairs})
    doubled += len(pairs) - len(set(pairs))
    return {
        "status": str(run.status),
        "last_step": run.last_step,
        "metric_rows": metric_rows,
        "metric_keys_every_step": len(every_step),
        "sample_rows": len(samples),
        "log_rows": len(store.logs(run.id, limit=10**6)),
        "rows_lost": lost,
        "rows_doubled": doubled,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--kill-every", type=int, default=30)
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--label", default="soak")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    random.seed(args.seed)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="rlstudio-soak-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'soak.db'}"
        log_path = Path(tmp) / "cli.log"
        stop, counts = mp.Event(), mp.Manager().dict()
        reader = mp.Process(target=_reader, args=(db, stop, counts))
        started = time.monotonic()
        with Store(db) as store, log_path.open("w") as log:
            reader.start()
            segments = _train(store, db, log, args)
            stop.set()
            reader.join(30)
            tally = _tally(store, args.steps)
        wall = time.monotonic() - started
        cli_text = log_path.read_text()
    reads = dict(counts)
    training_s = sum(s["seconds"] for s in segments)
    rows = tally["metric_rows"] + tally["sample_rows"] + tally["log_rows"]
    locked = cli_text.count(LOCKED) + sum(n for k, n in reads.items() if LOCKED in k)
    result = {
        "command": (
            f"python bench/soak.py --steps {args.steps} --kill-every {args.kill_every} "
            f"--checkpoint-every {args.checkpoint_every} --seed {args.seed}"
        ),
        "steps": args.steps,
        "kills": sum(s["ended"] == "killed" for s in segments),
        "segments": segments,
        **tally,
        "rows_in_store": rows,
        "rows_per_s": round(rows / training_s, 1),
        "database_is_locked": locked,
        "reader_polls": reads.pop("polls", 0),
        "reader_errors": reads,
        "tracebacks_in_cli_output": cli_text.count("Traceback"),
        "wall_s": round(wall, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    saved[args.label] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "segments"}, indent=2))
    ok = result["rows_lost"] == result["rows_doubled"] == result["database_is_locked"] == 0
    return 0 if ok and tally["status"] == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
