"""Signals to `rlstudio train` as a user (or a process manager) sends them: while it starts
up, a quiet exit; a second SIGTERM is called SIGTERM, not Ctrl+C. The moments are made
sure by a reward file that says where it is (a marker file) and then sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.store import RunStatus, Store
from tests.core.helpers import ROOT, TINY_RECIPE

# Sleeps while it loads (the recipe check before a run exists loads it), or while scoring
# a real batch (the check's one call on its dummy batch passes at once).
SLOW = """
import os, time
from pathlib import Path

MARK = Path(MARKER)
if not MARK.exists():  # the first load: the check before the run
    MARK.write_text("loading")
    time.sleep(LOAD_S)

def reward(prompts, completions, **columns):
    if completions[0] != "A short dummy completion.":  # not the signature check's trial call
        MARK.write_text("scoring")
        time.sleep(SCORE_S)
    return [0.5] * len(completions)
"""


def slow_reward(tmp_path: Path, load_s: float, score_s: float) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    source = SLOW.replace("MARKER", repr(str(marker)))
    source = source.replace("LOAD_S", str(load_s)).replace("SCORE_S", str(score_s))
    path = tmp_path / "slow.py"
    path.write_text(source)
    return path, marker


def train(db: str, reward: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "core.cli", "--db", db, "train", str(TINY_RECIPE)),
            *("--steps", "50", "--set", "training.batch_size=2", "--set"),
            f'reward.components=[{{kind="python", params={{path="{reward}"}}}}]',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        # a shell's background job ignores SIGINT; a terminal's does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(marker: Path, text: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text() == text):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("sig", "name"), [(signal.SIGINT, "Ctrl+C"), (signal.SIGTERM, "SIGTERM")])
def test_a_signal_while_starting_up_exits_quietly(tmp_path, sig, name):
    reward, marker = slow_reward(tmp_path, load_s=60, score_s=0)
    db = tmp_path / "runs.db"
    proc = train(f"sqlite:///{db}", reward)
    wait_for(marker, "loading", proc)  # the recipe's check, before any run row
    started = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"rlstudio: stopped ({name})"
    assert "started" not in out
    if db.exists():
        with Store(f"sqlite:///{db}") as store:
            assert store.runs() == []
    deadline = time.monotonic() + 10  # the reward worker it started went with it
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started):
        assert time.monotonic() < deadline, "a process it started is left"
        time.sleep(0.1)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_sigterm_quits_now_and_is_called_sigterm(tmp_path):
    reward, marker = slow_reward(tmp_path, load_s=0, score_s=5)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    proc = train(db, reward)
    wait_for(marker, "scoring", proc)  # step 1 scoring: the run's handler is on
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # still scoring step 1: quit now
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "rlstudio: SIGTERM: stopping after the current step (again to quit now)" in err
    assert err.strip().splitlines()[-1] == (
        "rlstudio: stopped (SIGTERM); `rlstudio resume 1` carries the run on"
    )
    assert "Ctrl+C" not in err and "Traceback" not in err
    with Store(db) as store:
        [run] = store.runs()
        assert (run.status, run.error) == (RunStatus.STOPPED, "interrupted (SIGTERM)")
