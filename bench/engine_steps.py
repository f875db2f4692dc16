"""Seconds per step and peak memory of each algorithm on the bundled default model,
with the shipped recipes' prompts and lengths. Each algorithm runs in its own process
so peak RSS is its own. Writes bench/results/engine_steps.json and prints a table.

    python bench/engine_steps.py [--steps 3] [--recipes sentiment_ppo length_reinforce]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def measure(recipe: str, steps: int) -> dict:
    """Run one recipe for `steps` steps in this process; return its timings."""
    import torch

    from core.config import load_config, with_overrides
    from core.events import Metrics
    from core.train import train

    cfg = load_config(ROOT / "assets" / "recipes" / f"{recipe}.toml")
    cfg = with_overrides(cfg, {"training.steps": steps, "training.checkpoint_every": 0})
    rows = [e.values for e in train(cfg) if isinstance(e, Metrics)]
    timed = rows[1:] if len(rows) > 1 else rows  # step 1 warms caches and allocators
    mean = lambda key: sum(r[key] for r in timed) / len(timed)  # noqa: E731
    return {
        "recipe": recipe,
        "algorithm": cfg.algorithm.name,
        "model": cfg.model.name,
        "batch_size": cfg.training.batch_size,
        "max_new_tokens": cfg.generation.max_new_tokens,
        "steps": steps,
        "timed_steps": len(timed),
        "rollout_s": mean("time/rollout_s"),
        "reward_s": mean("time/reward_s"),
        "update_s": mean("time/update_s"),
        "step_s": mean("time/rollout_s") + mean("time/reward_s") + mean("time/update_s"),
        "tokens_per_s": mean("perf/tokens_per_s"),
        "peak_mb": max(r["memory/peak_mb"] for r in rows),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--recipes", nargs="+", default=["sentiment_ppo", "length_reinforce"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps)))
        return 0
    from core.paths import cache_dir  # converted models are shared, runs are not

    results = []
    for recipe in args.recipes:
        with tempfile.TemporaryDirectory() as home:
            out = subprocess.run(
                [sys.executable, __file__, "--child", recipe, "--steps", str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={**os.environ, "RLSTUDIO_HOME": home, "RLSTUDIO_CACHE": str(cache_dir())},
            )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engine_steps.json").write_text(json.dumps(report, indent=2))
    header = (
        "recipe",
        "algorithm",
        "batch x tokens",
        "s/step",
        "rollout s",
        "update s",
        "tokens/s",
        "peak MB",
    )
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['recipe']} | {r['algorithm']} | {r['batch_size']} x {r['max_new_tokens']} | "
            f"{r['step_s']:.1f} | {r['rollout_s']:.1f} | {r['update_s']:.1f} | "
            f"{r['tokens_per_s']:.1f} | {r['peak_mb']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
