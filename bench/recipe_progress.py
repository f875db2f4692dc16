"""Does each shipped reward recipe show progress on this machine within minutes?

Runs each recipe for `--steps` steps on the bundled default model (its own settings,
seed and prompts; no checkpoints, no held-out evaluation), one process per recipe, and
compares the mean reward of the first and the last `--window` steps. Writes
bench/results/recipe_progress.json and prints a table.

    python bench/recipe_progress.py [--steps 20] [--window 5] [--jobs 1] [--recipes ...]

`--jobs N` trains N recipes at once, each with its share of the CPU's threads (the
rewards are the same; the minutes are each recipe's own, on a shared CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from children import run_child

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RECIPES = [
    "sentiment_ppo",
    "concise_answers",
    "json_replies",
    "arithmetic_grpo",
    "summaries_rouge",
    "polite_rlaif",
    "concise_judge",
]


def measure(recipe: str, steps: int) -> dict:
    """Train one recipe in this process; return its per-step rewards and time."""
    from core.config import load_config, with_overrides
    from core.events import Metrics
    from core.training.loop import train

    cfg = load_config(ROOT / "assets" / "recipes" / f"{recipe}.toml")
    cfg = with_overrides(
        cfg,
        {"training.steps": steps, "training.checkpoint_every": 0, "data.heldout_fraction": 0.0},
    )
    started = time.perf_counter()
    rows = [e.values for e in train(cfg) if isinstance(e, Metrics) and "reward/mean" in e.values]
    return {
        "recipe": recipe,
        "algorithm": cfg.algorithm.name,
        "rewards": [c.kind if not c.name else c.name for c in cfg.reward.components],
        "completions_per_step": cfg.training.batch_size * cfg.algorithm.group_size,
        "max_new_tokens": cfg.generation.max_new_tokens,
        "learning_rate": cfg.training.learning_rate,
        "reward_mean": [r["reward/mean"] for r in rows],
        "seconds": time.perf_counter() - started,
        "steps": steps,
    }


def summarise(result: dict, window: int) -> dict:
    rewards = result["reward_mean"]
    w = min(window, len(rewards) // 2) or 1
    first, last = sum(rewards[:w]) / w, sum(rewards[-w:]) / w
    return {**result, "window": w, "first": first, "last": last, "gain": last - first}


def print_table(results: list[dict]) -> None:
    print(
        "| recipe | algorithm | rewards | completions x tokens | steps | minutes "
        "| reward, first steps | reward, last steps | change |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['recipe']} | {r['algorithm']} | {', '.join(r['rewards'])} | "
            f"{r['completions_per_step']} x {r['max_new_tokens']} | {len(r['reward_mean'])} | "
            f"{r['seconds'] / 60:.1f} | {r['first']:.3f} | {r['last']:.3f} | "
            f"{r['gain']:+.3f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--window", type=int, default=5, help="steps averaged at each end")
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--jobs", type=int, default=1, help="recipes trained at once")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps)))
        return 0
    threads = str(max(1, (os.cpu_count() or 1) // max(1, args.jobs)))

    def one(recipe: str) -> dict | None:
        env = {"OMP_NUM_THREADS": threads} if args.jobs > 1 else None
        raw = run_child(__file__, [recipe, "--steps", str(args.steps)], recipe, env=env)
        if raw is None:
            return None
        result = summarise(raw, args.window)
        print(f"{recipe}: {result['first']:.3f} -> {result['last']:.3f}", file=sys.stderr)
        return result

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = [r for r in pool.map(one, args.recipes) if r is not None]
    out = RESULTS / "recipe_progress.json"
    # Rerunning some recipes keeps the other recipes' rows (each row says when it ran).
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for r in results:
        r.update(date=when, jobs=args.jobs)
    earlier = json.loads(out.read_text()).get("results", []) if out.exists() else []
    rerun = {r["recipe"] for r in results}
    kept = [
        r for r in earlier if r["recipe"] not in rerun and r.get("steps", args.steps) == args.steps
    ]
    report = {
        "date": when,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "steps": args.steps,
        "results": kept + results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
