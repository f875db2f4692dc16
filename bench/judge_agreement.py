"""How well does a judge question tell polite replies from rude ones?

24 hand-written replies (bench/data/polite_pairs.jsonl: 6 requests, 2 polite and 2 rude
replies each) scored by the bundled model as judge, asked two ways: the polite_rlaif
recipe's own question (worked examples, no chat template) and a plain question in the
judge's chat template. Reports, for each: the mean score of the polite and of the rude
replies, and how often a polite reply outscores a rude one to the same request (4 pairs
per request). Writes bench/results/judge_agreement.json and prints a table.

    python bench/judge_agreement.py
"""

from __future__ import annotations

import json
import statistics
import sys
import types
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAIN = {
    "mode": "yes_no",
    "system": "You are a careful judge of tone. You answer only yes or no.",
    "question": "Here is a request and a reply.\n\nRequest: {prompt}\n\nReply: {completion}"
    "\n\nIs the reply polite? Answer with yes or no.",
}


def recipe_params() -> dict:
    from core.config import load_config

    cfg = load_config(ROOT / "assets" / "recipes" / "polite_rlaif.toml")
    return dict(cfg.reward.components[0].params)


def agreement(scores: list[float], rows: list[dict]) -> dict:
    polite = [s for s, r in zip(scores, rows) if r["polite"]]
    rude = [s for s, r in zip(scores, rows) if not r["polite"]]
    wins = [
        float(a > b)
        for a, ra in zip(scores, rows)
        for b, rb in zip(scores, rows)
        if ra["polite"] and not rb["polite"] and ra["prompt"] == rb["prompt"]
    ]
    return {
        "polite_mean": statistics.mean(polite),
        "rude_mean": statistics.mean(rude),
        "pairs_ranked_right": statistics.mean(wins),
        "pairs": len(wins),
    }


def main() -> int:
    from core.rewards.composite import build_reward

    rows = [json.loads(line) for line in (ROOT / "bench/data/polite_pairs.jsonl").open()]
    prompts, replies = [r["prompt"] for r in rows], [r["reply"] for r in rows]
    results = {}
    for label, params in [("recipe question", recipe_params()), ("plain question", PLAIN)]:
        spec = types.SimpleNamespace(kind="judge", name="polite", weight=1.0, params=params)
        reward = build_reward([spec])
        try:
            scores = [float(s) for s in reward(prompts, replies).components["polite"]]
        finally:
            reward.close()
        results[label] = agreement(scores, rows)
    out = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "results": results}
    (ROOT / "bench/results/judge_agreement.json").write_text(json.dumps(out, indent=2))
    print("| question | polite replies | rude replies | same-request pairs ranked right |")
    print("|---|---|---|---|")
    for label, r in results.items():
        print(
            f"| {label} | {r['polite_mean']:.3f} | {r['rude_mean']:.3f} | "
            f"{r['pairs_ranked_right']:.0%} of {r['pairs']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
