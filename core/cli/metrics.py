"""`rlstudio metrics RUN_ID [--csv | --json] [--wide]`: a run's curves on stdout.

Long form (one row per step and key, as `export_metrics` writes) or wide (one row per
step, a column per key, for a spreadsheet or pandas); without --csv or --json, a table
for a person: each key's first, last, lowest and highest value, or the wide table."""

from __future__ import annotations

import csv
import json
import sys

from core.exports import json_number, metric_rows, wide_rows
from core.store import Store


def print_metrics(store: Store, run_id: int, form: str, wide: bool) -> int:
    store.run(run_id)  # an unknown id: one line, exit 2
    rows = metric_rows(store, run_id)
    out = sys.stdout
    if form == "csv":
        writer = csv.writer(out, lineterminator="\n")
        if wide:
            keys, table = wide_rows(rows)
            writer.writerow(["step", "wall_time", *keys])
            writer.writerows(
                [[r["step"], r["wall_time"], *(r.get(k) for k in keys)] for r in table]
            )
        else:
            writer.writerow(["step", "wall_time", "key", "value"])
            writer.writerows(rows)
    elif form == "json":
        if wide:
            table = [{k: json_number(v) for k, v in r.items()} for r in wide_rows(rows)[1]]
        else:
            table = [
                {"step": s, "wall_time": w, "key": k, "value": json_number(v)}
                for s, w, k, v in rows
            ]
        json.dump(table, out, indent=1)
        out.write("\n")
    else:
        _table(run_id, rows, wide)
    return 0


def _table(run_id: int, rows, wide: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    if wide:
        keys, table = wide_rows(rows)
        shown = Table("step", *keys, title=f"run {run_id}")
        for r in table:
            shown.add_row(str(r["step"]), *(_fmt(r.get(k)) for k in keys))
    else:
        shown = Table("metric", "steps", "first", "last", "min", "max", title=f"run {run_id}")
        series: dict[str, list[float]] = {}
        for _step, _wall, key, value in rows:
            series.setdefault(key, []).append(value)
        for key, values in sorted(series.items()):
            finite = [v for v in values if v == v] or [float("nan")]
            shown.add_row(
                key,
                str(len(values)),
                _fmt(values[0]),
                _fmt(values[-1]),
                _fmt(min(finite)),
                _fmt(max(finite)),
            )
    Console().print(shown)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
