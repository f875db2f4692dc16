"""What a checkpoint's save costs since it holds no pickle and a manifest of checksums.

Saves the same state with the earlier `save_checkpoint` (one pickled trainer_state.pt,
taken from git at BEFORE) and with today's (tensors + JSON, then every file's sha256 in
manifest.json), and times the check a resume makes (`checkpoint_problem`). Two states: a
tiny-random run's after one optimiser step, and the same with ~100 MB of Adam moments.

    PYTHONPATH=. python bench/checkpoint_save.py [--reps 5]   -> bench/results/checkpoint_save.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BEFORE = "1921e15"  # the last commit with the pickled trainer state
ROOT = Path(__file__).resolve().parents[1]


def _old_module():
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE}:core/training/checkpoint.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_checkpoint.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_run_state(extra_mb: int):
    from core.lm.policy import load_models
    from tests.core.helpers import tiny_config

    models = load_models(tiny_config().model, value_head=True, seed=0)
    params = [p for p in models.policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "scheduler": {"last_epoch": 1}}
    if extra_mb:
        n = extra_mb * 2**20 // 8  # two float32 moments
        big = {"exp_avg": torch.randn(n), "exp_avg_sq": torch.rand(n), "step": torch.tensor(1.0)}
        state["optimizer"]["state"][len(params)] = big
    return models, state


def _time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(extra_mb: int, reps: int) -> dict:
    from core.training.checkpoint import checkpoint_problem, save_checkpoint, verify

    old = _old_module()
    models, state = _tiny_run_state(extra_mb)
    root = Path(tempfile.mkdtemp())
    args = (models.policy, models.tokenizer, state)
    before = _time(lambda: old.save_checkpoint(root / "old", 1, *args), reps)
    after = _time(lambda: save_checkpoint(root / "new", 1, *args), reps)

    def check():
        verify._verdicts.clear()  # a fresh process's check: every file hashed
        assert checkpoint_problem(root / "new" / "step_1") is None

    checked = _time(check, reps)
    size = sum(f.stat().st_size for f in (root / "new" / "step_1").rglob("*") if f.is_file())
    shutil.rmtree(root)
    return {
        "extra_state_mb": extra_mb,
        "checkpoint_mb": round(size / 1e6, 1),
        "save_before_s": round(before, 4),
        "save_after_s": round(after, 4),
        "ratio": round(after / before, 2),
        "verify_s": round(checked, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    results = {
        "load_before": os.getloadavg(),
        "cases": [measure(mb, args.reps) for mb in (0, 100)],
        "load_after": os.getloadavg(),
        "reps": args.reps,
        "median_of_reps": True,
    }
    out = ROOT / "bench" / "results" / "checkpoint_save.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    json.dump(results, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
