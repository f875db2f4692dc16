"""Seconds per batch of the AI judge (RLAIF) on the bundled default model.

For each mode (yes_no, rating): the cold start (first batch, model load included)
timed apart, then the median of several batches of fresh (prompt, completion)
pairs (no cache hits), then a batch the cache answers entirely. The completions
are about as long as a recipe's (max_new_tokens = 48). With --recipe-steps N it
also times N training steps of each judge recipe (each in its own process, so its
peak memory is its own; the first step is left out of the mean). Writes
bench/results/judge.json and prints a table.

    python bench/judge.py [--batches 5] [--batch-size 16] [--recipe-steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RECIPES = ("polite_rlaif", "concise_judge")
sys.path.insert(0, str(ROOT))

QUESTION = (
    "Here is a request and a reply.\n\nRequest: {prompt}\n\nReply: {completion}\n\n"
    "Is the reply polite? Answer with yes or no."
)
RATING_QUESTION = (
    "Here is a request and a reply.\n\nRequest: {prompt}\n\nReply: {completion}\n\n"
    "Rate how polite the reply is from 1 (rude) to 10 (polite). Answer with the number only."
)
OPENERS = ["Sure!", "Of course.", "Well,", "Honestly,", "Happy to help:", "Fine."]
BODY = (
    "here is a short answer that goes on for a while, the way a small model's reply "
    "does when it is given forty-eight tokens to fill, with a detail or two"
)


def pairs(prompts: list[str], batch: int, size: int) -> tuple[list[str], list[str]]:
    """``size`` distinct pairs for batch number ``batch`` (so the cache never answers)."""
    ps, cs = [], []
    for i in range(size):
        k = batch * size + i
        ps.append(prompts[k % len(prompts)])
        cs.append(f"{OPENERS[k % len(OPENERS)]} {BODY} (reply {k}).")
    return ps, cs


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(mode: str, model: str, batches: int, size: int, prompts: list[str]) -> dict:
    import torch

    from core.rewards import BUILTINS, unload_models

    unload_models()
    question = QUESTION if mode == "yes_no" else RATING_QUESTION
    judge = BUILTINS["judge"](model=model, mode=mode, question=question, batch_size=size)
    t0 = time.perf_counter()
    judge(*pairs(prompts, 0, size))
    cold = time.perf_counter() - t0
    times = []
    for b in range(1, batches + 1):
        t0 = time.perf_counter()
        judge(*pairs(prompts, b, size))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    judge(*pairs(prompts, 1, size))
    cached = time.perf_counter() - t0
    loaded = judge._loaded()
    texts = [judge.format(loaded.tokenizer, p, c)[0] for p, c in zip(*pairs(prompts, 1, size))]
    tokens = [len(loaded.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    return {
        "mode": mode,
        "model": model,
        "batch_size": size,
        "batches": batches,
        "input_tokens_mean": statistics.mean(tokens),
        "cold_first_batch_s": cold,
        "batch_s_median": statistics.median(times),
        "batch_s_all": times,
        "per_sample_ms": 1000 * statistics.median(times) / size,
        "cached_batch_s": cached,
        "cache_hits": judge.cache_hits,
        "peak_rss_mb": peak_mb(),
        "device": str(loaded.device),
        "threads": torch.get_num_threads(),
    }


def measure_recipe(recipe: str, steps: int) -> dict:
    """Seconds per training step of one recipe, in a child process."""
    out = subprocess.run(
        [sys.executable, __file__, "--recipe-child", recipe, "--recipe-steps", str(steps)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--out", default=str(RESULTS / "judge.json"))
    parser.add_argument("--recipe-steps", type=int, default=0)
    parser.add_argument("--recipe-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.recipe_child:
        sys.path.insert(0, str(ROOT / "bench"))
        from engine_steps import measure as measure_steps

        print(json.dumps(measure_steps(args.recipe_child, args.recipe_steps)))
        return

    from core.config import DataConfig
    from core.data import load_prompts

    prompts = list(load_prompts(DataConfig(prompts="instructions")).prompts)
    results = [
        measure(mode, args.model, args.batches, args.batch_size, prompts)
        for mode in ("yes_no", "rating")
    ]
    print(f"{'mode':8} {'tokens':>6} {'cold s':>7} {'batch s':>8} {'ms/sample':>9} {'cached s':>8}")
    for r in results:
        print(
            f"{r['mode']:8} {r['input_tokens_mean']:6.0f} {r['cold_first_batch_s']:7.2f} "
            f"{r['batch_s_median']:8.2f} {r['per_sample_ms']:9.0f} {r['cached_batch_s']:8.4f}"
        )
    print(f"peak RSS {max(r['peak_rss_mb'] for r in results):.0f} MB")
    recipes = []
    if args.recipe_steps:
        recipes = [measure_recipe(name, args.recipe_steps) for name in RECIPES]
        print(
            f"{'recipe':14} {'step s':>6} {'rollout':>7} {'reward':>6} {'update':>6} {'peak MB':>7}"
        )
        for r in recipes:
            print(
                f"{r['recipe']:14} {r['step_s']:6.1f} {r['rollout_s']:7.1f} "
                f"{r['reward_s']:6.1f} {r['update_s']:6.1f} {r['peak_mb']:7.0f}"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "command": " ".join(["python bench/judge.py", *sys.argv[1:]]),
        "load_average_1m_at_end": os.getloadavg()[0],  # other jobs on the machine slow it
        "results": results,
        "recipes": recipes,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
