"""One measured run in a fresh process: each child has its own data folder (its runs and
peak RSS are its own) and shares the converted-model cache; it prints its result as JSON
on its last stdout line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child(
    script: str, args: list[str], label: str, env: dict | None = None, tail: int = 2000
) -> dict | None:
    """`python script --child ARGS`'s result; None (its stderr's tail shown) if it failed."""
    from core.paths import cache_dir  # converted models are shared, runs are not

    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run(
            [sys.executable, script, "--child", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={
                **os.environ,
                "RLSTUDIO_HOME": home,
                "RLSTUDIO_CACHE": str(cache_dir()),
                **(env or {}),
            },
        )
    if out.returncode != 0:  # the caller keeps its other rows; say what failed
        print(f"{label}: failed\n{out.stderr[-tail:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])
