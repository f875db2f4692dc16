"""`rlstudio doctor RUN_ID`: what the run doctor found in a stored run.

The findings stored with the run, as it recorded them; for a run that stored none (made
before the doctor, or with it off) or with `--rerun`, the rules run again over its stored
metrics (with its own [doctor] settings, changed by `--set doctor.KEY=VALUE`); `--save`
stores what a re-run found in place of what the run had."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.config import ConfigError, parse_override, with_overrides

if TYPE_CHECKING:  # the store and the runner load when the command runs, not with the parser
    from core.events import Finding
    from core.store import Store


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="what went wrong in a run: the run doctor's findings")
    p.add_argument("run_id", type=int)
    p.add_argument("--db", dest="db_sub", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--rerun", action="store_true", help="run the rules again over the stored metrics"
    )
    p.add_argument("--save", action="store_true", help="with --rerun: store what it found")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --rerun: a [doctor] setting, e.g. --set doctor.kl_factor=5",
    )


def training_steps(store: Store, run_id: int) -> list[tuple[int, dict[str, float]]]:
    """The run's training metrics step by step, as the loop sent them (evaluations,
    recorded at the same steps under eval/, left out)."""
    by_step: dict[int, dict[str, float]] = defaultdict(dict)
    for key, series in store.metrics(run_id).items():
        if key.startswith("eval/"):
            continue
        for step, value in zip(series.steps.tolist(), series.values.tolist()):
            by_step[step][key] = value
    return sorted(by_step.items())


def rerun(store: Store, run_id: int, settings: Mapping[str, object]) -> list[Finding]:
    from core.doctor import diagnose
    from core.runner import run_config

    cfg = run_config(store, run_id)
    wrong = [k for k in settings if not k.startswith("doctor.")]
    if wrong:
        raise ConfigError(f"--set {wrong[0]}: only [doctor] settings change a re-run")
    return diagnose(with_overrides(cfg, dict(settings)), training_steps(store, run_id))


def command(store: Store, args) -> int:
    if args.save and not args.rerun:
        raise ConfigError("--save stores what a re-run found: give --rerun too")
    settings = dict(parse_override(s) for s in args.set)
    if settings and not args.rerun:
        raise ConfigError("--set changes a re-run's [doctor] settings: give --rerun too")
    info = store.run(args.run_id)
    found, source = store.findings(args.run_id), "stored"
    if args.rerun or not found:
        found, source = rerun(store, args.run_id, settings), "rerun"
        if args.save:
            store.replace_findings(args.run_id, found)
    if args.json:
        rows = [dict(dataclasses.asdict(f), evidence=_jsonable(f.evidence)) for f in found]
        print(json.dumps({"run_id": info.id, "source": source, "findings": rows}, indent=2))
        return 0
    how = "as it recorded them" if source == "stored" else "the rules run over its metrics"
    print(f"run {info.id} ({info.name!r}, {info.status}, {max(info.last_step, 0)} steps): {how}")
    if not found:
        print("  no findings: the doctor saw nothing wrong")
    for f in sorted(found, key=lambda f: (-f.rank, f.step)):
        span = f"step {f.step}" if f.last_step == f.step else f"steps {f.step}-{f.last_step}"
        figures = ", ".join(f"{k} {v:.4g}" for k, v in f.evidence.items())
        print(f"  {f.severity:8} {span:12} {f.kind}: {f.explanation}")
        print(f"  {'':21} evidence: {figures}")
        print(f"  {'':21} try: {f.suggestion}")
    return 0


def _jsonable(evidence: Mapping[str, float]) -> dict[str, float | str]:
    """JSON has no NaN or infinity: those become the strings "nan", "inf", "-inf"."""
    return {k: v if math.isfinite(v) else str(v) for k, v in evidence.items()}
