"""`rlstudio --smoke-test`, the installers' self-check, from a source install (the frozen
bundle runs the same code in `make package-test`)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_smoke_test_trains_two_steps_in_the_window_and_exits_0(tmp_path):
    env = {**os.environ, "RLSTUDIO_HOME": str(tmp_path / "untouched")}
    done = subprocess.run(
        [sys.executable, "-m", "studio", "--smoke-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for step in (
        "database created at the current schema",
        "default model at hand",
        "main window and icon (offscreen)",
        "trained 2 steps on tiny-random",
        "reward worker started",
        "schema still current after the run",
        "smoke test passed",
    ):
        assert step in out, out
    # its database and runs went to a temporary folder, not the user's
    assert not (tmp_path / "untouched" / "data" / "rlstudio.db").exists()
