"""How responsive the studio stays while it trains (a benchmark, not a test).

1. The GUI event loop's delay: a 10 ms timer runs in the real window while a run trains
   in its QThread; each tick's lateness is recorded (p50 / p99 / max).
2. The redraw time of a 100,000-point curve in the dashboard (setData + a full paint).

    python bench/studio_responsiveness.py [--recipe sentiment_ppo] [--seconds 120]

Writes bench/results/studio_responsiveness.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

TICK_MS = 10


def event_loop_delay(app, window, seconds: float) -> dict:
    """Start the window's run, then measure a 10 ms timer's lateness while it trains."""
    late: list[float] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(TICK_MS)
    last = [0.0]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        if last[0]:
            late.append(max(0.0, now - last[0] - TICK_MS))
        last[0] = now

    assert window.start(), window.config_error
    # measure once training is under way (model loaded, first step begun)
    while window.running and "reward/mean" not in window.live.series:
        app.processEvents()
        time.sleep(0.01)
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    end = time.monotonic() + seconds
    steps_before = window.live.series["reward/mean"].n if window.running else 0
    while time.monotonic() < end and window.running:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    steps = window.live.series["reward/mean"].n - steps_before
    window.stop_and_wait()
    a = np.array(late)
    return {
        "ticks": len(a),
        "steps_trained_meanwhile": int(steps),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


def redraw_100k(app, repeats: int = 20) -> dict:
    from studio.panels.dashboard import Dashboard, RunSeries
    from studio.panels.series import Series

    d = Dashboard()
    d.resize(1400, 800)
    d.show()
    n = 100_000
    steps = np.arange(1, n + 1, dtype=np.float64)
    values = np.cumsum(np.random.default_rng(0).normal(size=n)) / 100
    run = RunSeries("bench")
    run.series["reward/mean"] = Series.from_arrays(steps, steps, values)
    d.show_runs([run])
    app.processEvents()
    # A new point repaints the curve's own panel (the screen updates the dirty region);
    # the whole dashboard's repaint is reported too: its 18 axes' text dominates it.
    panel = d.graphics.mapFromScene(d.plots["Reward"].sceneBoundingRect()).boundingRect()
    times, full = [], []
    for i in range(repeats):
        run.series["reward/mean"].append(n + i + 1, n + i + 1, values[-1])
        t0 = time.perf_counter()
        d.redraw()
        d.graphics.grab(panel)
        t1 = time.perf_counter()
        d.graphics.grab()
        times.append((t1 - t0) * 1000)
        full.append((time.perf_counter() - t1) * 1000)
    d.show_runs([RunSeries("empty")])
    app.processEvents()
    empty = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        d.graphics.grab()
        empty.append((time.perf_counter() - t0) * 1000)
    return {
        "points": n,
        "median_ms": float(np.median(times)),
        "max_ms": float(np.max(times)),
        "whole_dashboard_repaint_median_ms": float(np.median(full)),
        "empty_dashboard_repaint_median_ms": float(np.median(empty)),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--recipe", default="sentiment_ppo")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "studio_responsiveness.json"))
    args = p.parse_args()
    os.environ.setdefault("RLSTUDIO_HOME", tempfile.mkdtemp(prefix="rlstudio-bench-"))

    app = QApplication.instance() or QApplication([])
    from studio.main_window import MainWindow
    from studio.tasks import finish_garbage_collection

    window = MainWindow(db_url=None, recipe=args.recipe)
    window.resize(1500, 950)
    window.show()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "recipe": args.recipe,
        "command": "python bench/studio_responsiveness.py " + " ".join(sys.argv[1:]),
        "event_loop_delay": event_loop_delay(app, window, args.seconds),
        "redraw_100k": redraw_100k(app),
    }
    window.close()
    del window
    finish_garbage_collection()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.stdout.flush()
    os._exit(0)  # as studio.app does: skip a teardown that can abort after training


if __name__ == "__main__":
    main()
