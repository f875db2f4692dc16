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

from core.errors import RunStateError
from core.store import Store

FORMATS = (".csv", ".json")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: export to a .csv or .json file")
    return suffix


def json_number(v: float | None) -> float | str | None:
    """JSON has no NaN / inf: write them as strings rather than invalid JSON."""
    if v is None or math.isfinite(v):
        return v
    return str(v)


def metric_rows(store: Store, run_id: int) -> list[tuple[int, float, str, float]]:
    """Every metric point as (step, wall time, key, value), by step then key."""
    rows = [
        (int(step), float(wall), key, float(value))
        for key, series in store.metrics(run_id).items()
        for step, wall, value in zip(series.steps, series.wall_times, series.values)
    ]
    rows.sort(key=lambda r: (r[0], r[2]))
    return rows


def wide_rows(rows: list[tuple[int, float, str, float]]) -> tuple[list[str], list[dict]]:
    """One row per step with a column per key (the keys, then the rows); a key the step
    did not log is None there. A step's wall time is the latest of its points."""
    keys = sorted({key for _s, _w, key, _v in rows})
    by_step: dict[int, dict] = {}
    for step, wall, key, value in rows:
        row = by_step.setdefault(step, {"step": step, "wall_time": wall})
        row["wall_time"] = max(row["wall_time"], wall)
        row[key] = value
    return keys, [by_step[step] for step in sorted(by_step)]


def export_metrics(store: Store, run_id: int, path: str | Path) -> int:
    """Every metric point (step, wall time, key, value); returns the number of rows."""
    path = Path(path)
    kind = _format(path)
    rows = metric_rows(store, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "wall_time", "key", "value"])
            writer.writerows(rows)
    else:
        data = [
            {"step": s, "wall_time": w, "key": k, "value": json_number(v)} for s, w, k, v in rows
        ]
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
                "reward": json_number(s.reward),
                "components": {k: json_number(v) for k, v in s.components.items()},
                "tokens": s.tokens,
                "logprobs": s.logprobs,
                "kl": s.kl,
                "advantages": s.advantages,
            }
            for s in samples
        ]
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return len(samples)


MODEL_FORMATS = ("hf", "gguf", "adapter")


def export_run_model(
    store: Store,
    run_id: int,
    out: str | Path,
    format: str = "hf",
    outtype: str = "f16",
    say: Callable[[str], None] | None = None,
) -> tuple[Path, int]:
    """The run's newest usable checkpoint, written into the folder `out` as
    - "hf": a folder plain transformers loads (LoRA merged into its base),
    - "gguf": `run-N-<outtype>.gguf`, llama.cpp's format, with the tokenizer and its chat
      template (`outtype`: f32, f16, bf16 or q8_0, the converter's names),
    - "adapter": a LoRA run's peft adapter folder (`AutoPeftModelForCausalLM` loads it).
    `say` hears which newer checkpoints were skipped, and why. Returns what was written
    (the folder, or the .gguf file) and the checkpoint's step."""
    from core.algorithms import ALGORITHMS
    from core.runner import run_config, usable_checkpoint
    from core.training.checkpoint import export_model

    if format not in MODEL_FORMATS:
        raise RunStateError(f"--format {format!r}: must be one of {', '.join(MODEL_FORMATS)}")
    cfg = run_config(store, run_id)
    ckpt = usable_checkpoint(store, run_id, "export", say)
    out = Path(out)
    if format == "adapter":
        from core.export_adapter import export_adapter

        model_dir = Path(ckpt.path) / "model"
        return export_adapter(model_dir, out, cfg.model.name, run_id), ckpt.step
    extras = functools.partial(ALGORITHMS[cfg.algorithm.name].export_extras, cfg)
    if format == "hf":
        path = export_model(Path(ckpt.path), out, cfg.model.name, cfg.training.seed, extras)
        return path, ckpt.step
    import tempfile

    from core.export_gguf import check_converter, convert_to_gguf

    check_converter(outtype)  # before the minutes the folder takes to write
    with tempfile.TemporaryDirectory(prefix="rlstudio-gguf-") as tmp:
        hf = export_model(Path(ckpt.path), Path(tmp), cfg.model.name, cfg.training.seed)
        gguf = convert_to_gguf(hf, out / f"run-{run_id}-{outtype}.gguf", outtype)
    return gguf, ckpt.step
