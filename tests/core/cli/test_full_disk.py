"""A store whose disk fills up mid-run pauses the run instead of ending it, keeps what it
could not write in memory, and writes it all, in order, once there is space again; a
checkpoint that finds no space waits too, the previous one kept (issue 22 item 7). Real
`rlstudio train` processes on a real tmpfs that the test fills and empties."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.store import Store
from core.training.checkpoint import MANIFEST
from tests.core.cli.test_main import wait_for
from tests.core.helpers import TINY_RECIPE
from tests.mounts import fill, small_tmpfs

SAMPLES = 2


@pytest.fixture(autouse=True)
def _no_trainer_left():
    """A failing test must not leave its trainer waiting for space on a disk unmounted."""
    yield
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    _STARTED.clear()


_STARTED: list[subprocess.Popen] = []


def _train(db: Path, steps: int, log: Path, *settings: str) -> subprocess.Popen:
    small = ("training.batch_size=2", "generation.max_new_tokens=4")
    small += (f"logging.samples_per_step={SAMPLES}",)
    args = ["--db", str(db), "train", str(TINY_RECIPE), "--steps", str(steps)]
    for setting in (*small, *settings):
        args += ["--set", setting]
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env=os.environ.copy(),
    )
    _STARTED.append(proc)
    return proc


def _said(proc: subprocess.Popen, log: Path, words: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text()
        if words in text:
            return text
        assert proc.poll() is None, text
        time.sleep(0.2)
    pytest.fail(f"never said {words!r}: {log.read_text()[-2000:]}")


def _flat(text: str) -> str:
    """`text` without its whitespace: the console wraps long lines where it likes."""
    return "".join(text.split())


def _every_row_once_in_order(store: Store, steps: int) -> None:
    series = store.metrics(1)["reward/mean"]
    assert series.steps.tolist() == list(range(1, steps + 1))
    assert (series.wall_times[1:] > series.wall_times[:-1]).all()  # recorded as trained
    samples = store.samples(1, limit=10_000)
    assert [(s.step, s.idx) for s in samples] == [
        (step, i) for step in range(1, steps + 1) for i in range(SAMPLES)
    ]


def test_a_full_store_pauses_the_run_and_loses_no_row_once_space_is_back(tmp_path: Path):
    steps = 16
    with small_tmpfs(tmp_path / "disk", "6m") as disk:
        checkpoints = tmp_path / "checkpoints"  # on another disk: this test is the store's
        checkpoints.mkdir()
        (disk / "runs-checkpoints").symlink_to(checkpoints)
        db, log = disk / "runs.db", tmp_path / "stderr.txt"
        proc = _train(db, steps, log, "training.checkpoint_every=0")
        with Store(f"sqlite:///{db}") as store:
            wait_for(proc, store, lambda _st, run: run.last_step >= 3)
            filler = fill(disk)
            said = _flat(_said(proc, log, "Store full"))
            assert _flat(f"paused: Store full: sqlite:///{db} has no space left") in said
            assert _flat("run 1 waits for space, its ") in said
            assert _flat("rows kept in memory") in said
            held = store.run(1).last_step
            time.sleep(3)  # the run waits: it trains no step it could not record
            assert proc.poll() is None and store.run(1).last_step == held
            filler.unlink()
            out, _ = proc.communicate(timeout=300)
            err = log.read_text()
            assert proc.returncode == 0, err
            assert f"run 1 completed: {steps} steps" in out
            assert "the store was full for " in err and "every row kept meanwhile is written" in err
            assert "Traceback" not in err
            info = store.run(1)
            assert (str(info.status), info.last_step) == ("completed", steps)
            _every_row_once_in_order(store, steps)
            assert any("the store was full for" in e.message for e in store.logs(1))


def test_a_checkpoint_with_no_space_waits_and_keeps_the_previous_one(tmp_path: Path):
    steps = 8
    db, log = tmp_path / "runs.db", tmp_path / "stderr.txt"
    # the checkpoints' disk alone fills (the store's own full disk is the test above)
    with small_tmpfs(tmp_path / "runs-checkpoints", "160m") as disk:
        proc = _train(db, steps, log, "training.checkpoint_every=4")
        folder = disk / "run-1"
        with Store(f"sqlite:///{db}") as store:
            wait_for(proc, store, lambda st, _run: st.last_checkpoint(1) is not None)
            before = {str(p): p.stat().st_size for p in (folder / "step_4").rglob("*")}
            filler = fill(disk)
            said = _flat(_said(proc, log, "no space for the"))
            assert _flat("no space for the checkpoint of step 8") in said
            assert _flat("waiting for space, the previous checkpoint is kept") in said
            assert {str(p): p.stat().st_size for p in (folder / "step_4").rglob("*")} == before
            assert sorted(p.name for p in folder.iterdir()) == ["step_4"]  # no partial copy
            held = store.run(1).last_step
            time.sleep(3)  # the run waits at step 8: nothing trained past what it can save
            assert proc.poll() is None and store.run(1).last_step == held == 8
            filler.unlink()
            out, _ = proc.communicate(timeout=300)
            err = log.read_text()
            assert proc.returncode == 0, err
            assert f"run 1 completed: {steps} steps" in out
            assert "Traceback" not in err
            assert [c.step for c in store.checkpoints(1)] == [4, 8]
            assert (folder / "step_8" / MANIFEST).is_file()  # written last: the save completed
            _every_row_once_in_order(store, steps)


def test_a_stop_while_the_store_is_full_ends_the_run_stopped_once_space_is_back(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk", "6m") as disk:
        checkpoints = tmp_path / "checkpoints"
        checkpoints.mkdir()
        (disk / "runs-checkpoints").symlink_to(checkpoints)
        db, log = disk / "runs.db", tmp_path / "stderr.txt"
        proc = _train(db, 40, log, "training.checkpoint_every=0")
        with Store(f"sqlite:///{db}") as store:
            wait_for(proc, store, lambda _st, run: run.last_step >= 2)
            filler = fill(disk)
            _said(proc, log, "Store full")
            proc.send_signal(signal.SIGTERM)
            _said(proc, log, "stopping after the current step")
            time.sleep(2)
            assert proc.poll() is None  # its last rows and its end wait for space
            assert log.read_text().count("Store full") == 1  # said once, not per event
            filler.unlink()
            out, _ = proc.communicate(timeout=300)
            err = log.read_text()
            assert proc.returncode == 0, err
            info = store.run(1)
            assert str(info.status) == "stopped" and 2 <= info.last_step < 40
            assert f"run 1 stopped: {info.last_step} steps" in out
            _every_row_once_in_order(store, info.last_step)
            assert store.last_checkpoint(1).step == info.last_step  # saved on the way out
