"""A run's data out of the store: metrics and samples as CSV or JSON, and the model.

The CLI and the studio's runs browser call these; the format follows the file's suffix.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path

from core.store import Store

FORMATS = (".csv", ".json")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: export to a .csv or .json file")
    return suffix


def _number(v: float | None) -> float | str | None:
    """JSON has no NaN / inf: write them as strings rather than invalid JSON."""
    if v is None or math.isfinite(v):
        return v
    return str(v)


def export_metrics(store: Store, run_id: int, path: str | Path) -> int:
    """Every metric point (step, wall time, key, value); returns the number of rows."""
    path = Path(path)
    kind = _format(path)
    rows = [
        (int(step), float(wall), key, float(value))
        for key, series in store.metrics(run_id).items()
        for step, wall, value in zip(series.steps, series.wall_times, series.values)
    ]
    rows.sort(key=lambda r: (r[0], r[2]))
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "wall_time", "key", "value"])
            writer.writerows(rows)
    else:
        data = [{"step": s, "wall_time": w, "key": k, "value": _number(v)} for s, w, k, v in rows]
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return len(rows)


def export_samples(store: Store, run_id: int, path: str | Path, page: int = 1000) -> int:
    """Every stored sample with its reward components (JSON adds the per-token arrays)."""
    path = Path(path)
    kind = _format(path)
    samples, offset = [], 0
    while batch := store.samples(run_id, offset=offset, limit=page):
        samples.extend(batch)
        offset += len(batch)
    names = list(dict.fromkeys(k for s in samples for k in s.components))
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "idx", "prompt", "completion", "reward", *names])
            for s in samples:
                comps = [s.components.get(n) for n in names]
                writer.writerow([s.step, s.idx, s.prompt, s.completion, s.reward, *comps])
    else:
        data = [
            {
                "step": s.step,
                "idx": s.idx,
                "prompt": s.prompt,
                "completion": s.completion,
                "reward": _number(s.reward),
                "components": {k: _number(v) for k, v in s.components.items()},
                "tokens": s.tokens,
                "logprobs": s.logprobs,
                "kl": s.kl,
                "advantages": s.advantages,
            }
            for s in samples
        ]
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return len(samples)


def export_run_model(
    store: Store, run_id: int, out: str | Path, say: Callable[[str], None] | None = None
) -> tuple[Path, int]:
    """The run's newest usable checkpoint as a folder plain transformers loads; `say`
    hears which newer checkpoints were skipped, and why."""
    from core.algorithms import ALGORITHMS
    from core.runner import run_config, usable_checkpoint
    from core.training.checkpoint import export_model

    cfg = run_config(store, run_id)
    ckpt = usable_checkpoint(store, run_id, "export", say)
    extras = functools.partial(ALGORITHMS[cfg.algorithm.name].export_extras, cfg)
    path = export_model(Path(ckpt.path), Path(out), cfg.model.name, cfg.training.seed, extras)
    return path, ckpt.step
