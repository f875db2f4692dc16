"""GRPO against its 2025 family on the shipped GRPO recipes, scored by the held-out
evaluation before and after training (not by the noisy training batches).

    python bench/grpo_family.py [--steps 20] [--seeds 0 1 2]
        [--recipes arithmetic_grpo json_replies]
        [--variants grpo dapo gspo dr_grpo] [--jobs 1]

Each (recipe, variant, seed) trains in a fresh process on the bundled default model.
Writes bench/results/grpo_family.json and prints the table the README shows: the mean
held-out reward gain over the seeds, with its spread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from children import run_child

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# TRL's names; each variant as its paper sets it.
VARIANTS: dict[str, dict] = {
    "grpo": {},
    # DAPO (Yu et al. 2025): token-level loss over the step, clip-higher, no KL,
    # truncated completions out of the loss, and the soft overlong punishment (added below).
    "dapo": {
        "algorithm.loss_type": "dapo",
        "algorithm.epsilon_high": 0.28,
        "algorithm.kl_coef": 0.0,
        "algorithm.mask_truncated_completions": True,
    },
    # GSPO (Zheng et al. 2025): one length-normalised ratio per completion, tight clip.
    "gspo": {
        "algorithm.importance_sampling_level": "sequence",
        "algorithm.clip_range": 3e-4,
        "algorithm.epsilon_high": 4e-4,
    },
    # Dr. GRPO (Liu et al. 2025): no std scaling, a constant token normaliser.
    "dr_grpo": {"algorithm.loss_type": "dr_grpo", "algorithm.scale_rewards": "none"},
}
RECIPES = ["arithmetic_grpo", "json_replies"]


def measure(recipe: str, variant: str, seed: int, steps: int) -> dict:
    from core.config import load_config, to_dict, with_overrides
    from core.events import Metrics
    from core.training.loop import train

    cfg = load_config(ROOT / "assets" / "recipes" / f"{recipe}.toml")
    settings = {"training.steps": steps, "training.seed": seed, "training.checkpoint_every": 0}
    if variant == "dapo":  # DAPO's soft overlong punishment joins the task's reward
        limit = cfg.generation.max_new_tokens
        overlong = {"kind": "overlong", "params": {"max_length": limit, "cache": limit // 4 or 1}}
        settings["reward.components"] = [*to_dict(cfg.reward)["components"], overlong]
    cfg = with_overrides(cfg, {**settings, **VARIANTS[variant]})
    evals = [e for e in train(cfg) if isinstance(e, Metrics) and "eval/reward/mean" in e.values]
    # The task's own score, without the overlong term DAPO adds to its training reward.
    key = "eval/reward/" + (cfg.reward.components[0].name or cfg.reward.components[0].kind)
    key = key if key in evals[0].values else "eval/reward/mean"
    before, after = evals[0].values[key], evals[-1].values[key]
    return {
        "recipe": recipe,
        "variant": variant,
        "seed": seed,
        "before": before,
        "after": after,
        "gain": after - before,
        "key": key,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        recipe, variant, seed = args.child
        print(json.dumps(measure(recipe, variant, int(seed), args.steps)))
        return 0
    runs = [(r, v, s) for r in args.recipes for v in args.variants for s in args.seeds]
    threads = str(max(1, (os.cpu_count() or 1) // max(1, args.jobs)))

    def one(run):
        r, v, s = run
        env = {"OMP_NUM_THREADS": threads} if args.jobs > 1 else None
        return run_child(__file__, [r, v, str(s), "--steps", str(args.steps)], f"{r}/{v}/{s}", env)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = [x for x in pool.map(one, runs) if x is not None]
    print("| recipe | variant | held-out before | after | gain (mean +- sd over seeds) |")
    print("|---|---|---|---|---|")
    for r in args.recipes:
        for v in args.variants:
            rows = [x for x in results if x["recipe"] == r and x["variant"] == v]
            if not rows:
                continue
            gains = [x["gain"] for x in rows]
            sd = statistics.stdev(gains) if len(gains) > 1 else 0.0
            print(
                f"| {r} | {v} | {statistics.mean(x['before'] for x in rows):.3f} | "
                f"{statistics.mean(x['after'] for x in rows):.3f} | "
                f"{statistics.mean(gains):+.3f} +- {sd:.3f} |"
            )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
        "steps": args.steps,
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "grpo_family.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
