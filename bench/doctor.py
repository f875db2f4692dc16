"""The run doctor on real runs: what it finds in each shipped recipe's 20-step run, the step
at which it diagnoses three tiny-random runs built to fail, and what it costs per step.

    python bench/doctor.py [--steps 20] [--model tiny-random] [--recipes ...] [--broken-only]

Each recipe trains with its own settings on `--model` (tiny-random by default: the real
model's 20-step runs take 5-20 minutes each on a 2-core CPU; a judge reward judges with
the same model); no checkpoints, no held-out evaluation. The broken runs are the tiny
recipe with a learning rate of 0.5, with a constant reward, and with max_new_tokens 3 (and a
stop string tiny-random writes now and then, so its completions can end by themselves; it
never writes EOS). The cost: the doctor's per-step call timed over each run's own metrics
(the median of 200 replays), against the run's median step time. Writes
bench/results/doctor.json and prints two tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
# the healthy tiny recipe first: the reference the broken runs are made from
RECIPES = sorted(
    (p.stem for p in (ROOT / "assets" / "recipes").glob("*.toml")), key=lambda n: n != "tiny_smoke"
)
CONSTANT_REWARD = "def reward(prompt, completion, **columns):\n    return 0.5\n"


def broken_runs(folder: Path) -> dict[str, dict]:
    code = folder / "constant.py"
    code.write_text(CONSTANT_REWARD)
    constant = [{"kind": "python", "params": {"path": str(code)}}]
    return {
        "learning_rate_0.5": {"training.learning_rate": 0.5},
        "constant_reward": {"reward.components": constant},
        "max_new_tokens_3": {"generation.max_new_tokens": 3, "generation.stop": ["y"]},
    }


def on_model(cfg, model: str):
    """The recipe on `model`; its judge (if any) judges with the same model."""
    components = tuple(
        dataclasses.replace(c, params={**c.params, "model": model}) if c.kind == "judge" else c
        for c in cfg.reward.components
    )
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, name=model),
        reward=dataclasses.replace(cfg.reward, components=components),
    )


def measure(cfg) -> dict:
    """Train `cfg`; its findings (as they stand at the end), step times, doctor cost."""
    from core.config import validate
    from core.doctor import Doctor
    from core.events import Finding, Metrics
    from core.training.loop import train

    cfg = validate(cfg)
    steps, found = [], {}
    started = time.perf_counter()
    for event in train(cfg):
        if isinstance(event, Metrics) and "time/update_s" in event.values:
            steps.append((event.step, dict(event.values)))
        elif isinstance(event, Finding):
            found[event.kind, event.step] = event
    seconds = time.perf_counter() - started
    step_s = [
        v.get("time/rollout_s", 0) + v.get("time/reward_s", 0) + v["time/update_s"]
        for _s, v in steps
    ]
    costs = []
    for _ in range(200):  # the doctor's whole run, replayed: its per-step cost
        doctor = Doctor.for_run(cfg)
        t0 = time.perf_counter()
        for step, values in steps:
            doctor.observe(step, values)
        costs.append((time.perf_counter() - t0) / max(1, len(steps)))
    findings = sorted(found.values(), key=lambda f: (f.step, f.kind))
    firsts = [f for f in findings if f.severity != "info"]
    return {
        "steps": len(steps),
        "seconds": seconds,
        "step_s_median": statistics.median(step_s) if step_s else None,
        "doctor_us_per_step_median": statistics.median(costs) * 1e6,
        "doctor_share_of_step": statistics.median(costs) / statistics.median(step_s)
        if step_s
        else None,
        "findings": [dict(dataclasses.asdict(f), evidence=_plain(f.evidence)) for f in findings],
        "diagnosed_at": firsts[0].step if firsts else None,
        "diagnosis": f"{firsts[0].severity} {firsts[0].kind}" if firsts else None,
    }


def _plain(evidence: dict) -> dict:
    """JSON has no NaN or infinity: those become strings."""
    return {k: v if abs(v) < float("inf") else str(v) for k, v in evidence.items()}


def one(label: str, cfg) -> dict:
    print(f"{label} ...", file=sys.stderr, flush=True)
    try:
        row = {"run": label, **measure(cfg)}
    except Exception as exc:  # a recipe that cannot run on this model: say so, go on
        row = {"run": label, "error": f"{type(exc).__name__}: {exc}"}
    print(f"{label}: {_summary(row)}", file=sys.stderr, flush=True)
    return row


def _summary(row: dict) -> str:
    if "error" in row:
        return f"not run ({row['error'][:120]})"
    kinds = ", ".join(f"{f['severity']} {f['kind']}@{f['step']}" for f in row["findings"])
    return kinds or "no findings"


def print_tables(recipes: list[dict], broken: list[dict]) -> None:
    print("| recipe (20 steps) | findings (severity kind @ start step) | above info |")
    print("|---|---|---|")
    for r in recipes:
        above = sum(f["severity"] != "info" for f in r.get("findings", []))
        print(f"| {r['run']} | {_summary(r)} | {above if 'error' not in r else ''} |")
    print()
    print("| broken run | diagnosed at step | by | step (s) | doctor (us/step) | share |")
    print("|---|---|---|---|---|---|")
    for r in broken:
        if "error" in r:
            print(f"| {r['run']} | not run | {r['error'][:60]} | | | |")
            continue
        print(
            f"| {r['run']} | {r['diagnosed_at']} | {r['diagnosis']} | {r['step_s_median']:.2f} "
            f"| {r['doctor_us_per_step_median']:.0f} | {r['doctor_share_of_step']:.1e} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default="tiny-random")
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--broken-only", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    from core.config import load_config, with_overrides

    quiet = {
        "training.checkpoint_every": 0,
        "data.heldout_fraction": 0.0,
        "training.steps": args.steps,
    }
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "model": args.model,
        "steps": args.steps,
        "broken": [],
        "recipes": [],
    }

    def save() -> None:  # after every run: a long bench cut short keeps what it measured
        report["loadavg_after"] = os.getloadavg()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "doctor.json").write_text(json.dumps(report, indent=2, default=str))

    tiny = load_config(ROOT / "assets" / "recipes" / "tiny_smoke.toml")
    with tempfile.TemporaryDirectory() as folder:
        for label, over in broken_runs(Path(folder)).items():
            report["broken"].append(one(label, with_overrides(tiny, {**quiet, **over})))
            save()
    for name in [] if args.broken_only else args.recipes:
        cfg = load_config(ROOT / "assets" / "recipes" / f"{name}.toml")
        report["recipes"].append(one(name, with_overrides(on_model(cfg, args.model), quiet)))
        save()
    recipes, broken = report["recipes"], report["broken"]
    print_tables(recipes, broken)
    return 0


if __name__ == "__main__":
    sys.exit(main())
