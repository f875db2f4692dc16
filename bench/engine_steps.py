"""Seconds per step and peak memory of each algorithm on the bundled default model,
with the shipped recipes' prompts and lengths. Each algorithm runs in its own process
so peak RSS is its own. Writes bench/results/engine_steps.json and prints a table.

    python bench/engine_steps.py [--steps 3] [--recipes sentiment_ppo length_reinforce]
    python bench/engine_steps.py --compile --steps 4  # eager vs model.compile, alternating
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from children import run_child

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# Every algorithm on the same prompts, lengths and completions per step (8 x 32 tokens).
ALGORITHM_MATRIX = {
    "ppo": {"training.batch_size": 8},
    "a2c": {"algorithm.name": "a2c", "training.batch_size": 8},
    "reinforce": {"algorithm.name": "reinforce", "training.batch_size": 8},
    "rloo": {"algorithm.name": "rloo", "algorithm.group_size": 4, "training.batch_size": 2},
    "grpo": {"algorithm.name": "grpo", "algorithm.group_size": 4, "training.batch_size": 2},
    "ilql-online": {"algorithm.name": "ilql", "training.batch_size": 8},
    "ilql-offline": {
        "algorithm.name": "ilql",
        "training.batch_size": 8,
        "ilql.mode": "offline",
        "ilql.dataset": "../datasets/story_sentiment_rated.jsonl",
    },
}


def measure(recipe: str, steps: int, overrides: dict | None = None) -> dict:
    """Run one recipe for `steps` steps in this process; return its timings."""
    import torch

    from core.config import load_config, with_overrides
    from core.events import Metrics
    from core.training.loop import train

    cfg = load_config(ROOT / "assets" / "recipes" / f"{recipe}.toml")
    cfg = with_overrides(
        cfg,
        {
            "training.steps": steps,
            "training.checkpoint_every": 0,
            "data.heldout_fraction": 0.0,
            **(overrides or {}),
        },
    )
    rows = [e.values for e in train(cfg) if isinstance(e, Metrics)]
    timed = rows[1:] if len(rows) > 1 else rows  # step 1 warms caches and allocators
    mean = lambda key: sum(r[key] for r in timed) / len(timed)  # noqa: E731
    return {
        "recipe": recipe,
        "algorithm": cfg.algorithm.name,
        "model": cfg.model.name,
        "batch_size": cfg.training.batch_size * cfg.algorithm.group_size,
        "max_new_tokens": cfg.generation.max_new_tokens,
        "steps": steps,
        "timed_steps": len(timed),
        "compile": cfg.model.compile,
        "first_step_s": rows[0]["time/rollout_s"]
        + rows[0]["time/reward_s"]
        + rows[0]["time/update_s"],  # with model.compile: the compilation included
        "rollout_s": mean("time/rollout_s"),
        "reward_s": mean("time/reward_s"),
        "update_s": mean("time/update_s"),
        "step_s": mean("time/rollout_s") + mean("time/reward_s") + mean("time/update_s"),
        "tokens_per_s": mean("perf/tokens_per_s"),
        "peak_mb": max(r["memory/peak_mb"] for r in rows),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }


def print_table(results: list[dict]) -> None:
    print(
        "| run | algorithm | completions x tokens | s/step | rollout s | update s "
        "| tokens/s | peak MB | first step s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['label']} | {r['algorithm']} | {r['batch_size']} x {r['max_new_tokens']} | "
            f"{r['step_s']:.1f} | {r['rollout_s']:.1f} | {r['update_s']:.1f} | "
            f"{r['tokens_per_s']:.1f} | {r['peak_mb']:.0f} | {r['first_step_s']:.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--recipes", nargs="+", default=["sentiment_ppo", "length_reinforce"])
    parser.add_argument(
        "--algorithms",
        action="store_true",
        help="every algorithm on sentiment_ppo's prompts and lengths",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="each recipe eager, then with model.compile (torch.compile of the update)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compile and args.algorithms:
        parser.error("--compile takes --recipes, not --algorithms")
    if args.child:
        print(json.dumps(measure(args.child, args.steps, json.loads(args.overrides))))
        return 0
    if args.algorithms:
        jobs = [("sentiment_ppo", name, o) for name, o in ALGORITHM_MATRIX.items()]
    elif args.compile:
        jobs = [
            (recipe, f"{recipe}{', compiled' if on else ''}", {"model.compile": on})
            for recipe in args.recipes
            for on in (False, True)
        ]
    else:
        jobs = [(recipe, recipe, {}) for recipe in args.recipes]
    results = []
    for recipe, label, overrides in jobs:
        child_args = [recipe, "--steps", str(args.steps), "--overrides", json.dumps(overrides)]
        result = run_child(__file__, child_args, label)
        if result is not None:
            results.append({"label": label, **result})
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "engine_algorithms.json" if args.algorithms else "engine_steps.json"
    name = "engine_compile.json" if args.compile else name
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
