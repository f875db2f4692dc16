"""The studio trains as fast as the CLI: s/step of one recipe trained in the real window's
QThread (the dashboard, plots and timers live beside it) against `rlstudio train` in a
process of its own, on the same machine in the same run.

    python bench/studio_vs_cli.py [--recipe sentiment_ppo] [--steps 6] [--rounds 2]

Each run is a fresh process with its own data folder (the converted model is shared); the
sides alternate (cli, studio, studio, cli, ...) so drift in the machine's load hits both.
s/step is the engine's own `time/step_s` (pauses and evaluations left out), step 1 left
out as the warm-up; reported as medians and the studio/CLI ratio. Writes
bench/results/studio_vs_cli.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cpu_load import hogs, machine_facts  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "studio_vs_cli.json"


def step_seconds(db_url: str) -> list[float]:
    """The run's `time/step_s` values, step order (the store holds one run)."""
    from core.store import Store

    with Store(db_url) as store:
        run = store.runs()[0]
        series = store.metrics(run.id, keys=["time/step_s"])["time/step_s"]
        return [float(v) for v in series.values]


def studio_child(recipe: str, steps: int, db_url: str) -> None:
    """Open the real window on `recipe`, set its steps in the form, Start, wait for the end."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from studio.main_window import MainWindow

    window = MainWindow(db_url=db_url, recipe=recipe)
    window.resize(1500, 950)
    window.show()
    window.setup.form.set_values({"training": {"steps": steps}})
    assert window.start(), window.config_error
    while window.running:
        app.processEvents()
        time.sleep(0.005)  # the event loop's own idle wait, about
    window.close()
    sys.stdout.flush()
    os._exit(0)  # as studio.app does: skip a teardown that can abort after training


def one_run(side: str, recipe: str, steps: int) -> list[float]:
    from core.paths import cache_dir

    with tempfile.TemporaryDirectory() as home:
        db = f"sqlite:///{home}/runs.db"
        env = {**os.environ, "RLSTUDIO_HOME": home, "RLSTUDIO_CACHE": str(cache_dir())}
        if side == "cli":
            cmd = [sys.executable, "-m", "core.cli", "--db", db, "train", recipe]
            cmd += ["--steps", str(steps)]
        else:
            cmd = [sys.executable, __file__, "--child", recipe, str(steps), db]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
        return step_seconds(db)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="sentiment_ppo")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--load", type=int, default=0, help="busy background processes")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        studio_child(args.child[0], int(args.child[1]), args.child[2])
        return 0
    recipe = str(ROOT / "assets" / "recipes" / f"{args.recipe}.toml")
    runs: dict[str, list[list[float]]] = {"cli": [], "studio": []}
    order = [("cli", "studio"), ("studio", "cli")]
    with hogs(args.load):
        for r in range(args.rounds):
            for side in order[r % 2]:
                print(f"round {r + 1}: {side}...", file=sys.stderr, flush=True)
                runs[side].append(one_run(side, recipe, args.steps))
    timed = {side: [s for run in rs for s in run[1:]] for side, rs in runs.items()}
    medians = {side: statistics.median(v) for side, v in timed.items()}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/studio_vs_cli.py " + " ".join(sys.argv[1:]),
        "machine": machine_facts(args.load),
        "recipe": args.recipe,
        "steps": args.steps,
        "rounds": args.rounds,
        "step_s": runs,
        "median_step_s": medians,
        "studio/cli": medians["studio"] / medians["cli"],
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("median_step_s", "studio/cli", "machine")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
