"""Run integrity as a user meets it (issue 23): one trainer per run, ids never reused,
nothing deleted or lost without a word. Real `rlstudio` processes on a real SQLite file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli.main import main
from core.store import RunStatus, Store
from core.training.checkpoint import STATE_JSON, read_trainer_state
from tests.core.cli.test_main import wait_for
from tests.core.helpers import TINY_RECIPE


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def train(db: str, steps: int, every: int, *extra: str) -> None:
    args = ["--db", db, "train", str(TINY_RECIPE), "--steps", str(steps)]
    args += ["--set", f"training.checkpoint_every={every}", *extra]
    assert main(args) == 0


def cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        **popen,
    )


def test_two_resumes_started_together_exactly_one_trains(db, capsys):
    train(db, 2, 2)
    both = [cli("--db", db, "resume", "1", "--steps", "500") for _ in range(2)]
    deadline = time.monotonic() + 240
    while all(p.poll() is None for p in both):  # the loser exits; the winner trains on
        assert time.monotonic() < deadline, "neither resume gave way"
        time.sleep(0.2)
    loser = next(p for p in both if p.poll() is not None)
    winner = next(p for p in both if p is not loser)
    _out, err = loser.communicate()
    assert loser.returncode == 2, err
    assert err.strip() == (
        f"rlstudio: error: run 1 is running (pid {winner.pid} on {socket.gethostname()})"
    )
    with Store(db) as store:
        wait_for(winner, store, lambda _st, run: run.last_step >= 3)
        assert main(["--db", db, "delete", "1", "--yes"]) == 2  # not while it trains
        assert f"run 1 is running (pid {winner.pid}" in capsys.readouterr().err
        winner.send_signal(signal.SIGTERM)
        out, err = winner.communicate(timeout=120)
        assert winner.returncode == 0, err
        assert "run 1 stopped" in out
        run = store.run(1)
        samples = store.samples(1, limit=10_000)
        keys = [(s.step, s.idx) for s in samples]
        assert len(keys) == len(set(keys)) == store.sample_count(1)  # no step written twice
        assert sorted({s.step for s in samples}) == list(range(1, run.last_step + 1))
        resumed = [e.message for e in store.logs(1) if e.message.startswith("resumed from")]
        assert len(resumed) == 1


def test_a_deleted_runs_id_is_not_reused_and_the_new_runs_checkpoints_survive(db, tmp_path):
    folders = tmp_path / "runs-checkpoints"
    train(db, 2, 1)
    assert (folders / "run-1" / "step_2").is_dir()
    assert main(["--db", db, "delete", "1"]) == 2  # says what would go; nothing goes
    assert (folders / "run-1").is_dir()
    assert main(["--db", db, "delete", "1", "--yes"]) == 0
    assert not (folders / "run-1").exists()
    # a folder a run-2 of an older version left behind, never recorded for the new run 2
    stray = folders / "run-2" / "step_99"
    stray.mkdir(parents=True)
    (stray / STATE_JSON).write_bytes(b"old")

    train(db, 3, 1)
    with Store(db) as store:
        (run,) = store.runs()
        assert run.id == 2
        kept = [c.step for c in store.checkpoints(2) if Path(c.path).is_dir()]
        assert kept == [2, 3]  # keep_checkpoints = 2, pruned among its own
    assert stray.is_dir()  # not this run's: never pruned
    assert main(["--db", db, "export", "2", "--out", str(tmp_path / "out")]) == 0


def test_resume_without_a_checkpoint_is_refused_and_from_scratch_makes_a_linked_run(
    db, tmp_path, capsys
):
    train(db, 2, 2)
    capsys.readouterr()
    folder = tmp_path / "runs-checkpoints" / "run-1"
    shutil.rmtree(folder)
    assert main(["--db", db, "resume", "1", "--steps", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"rlstudio: error: run 1 has no checkpoint on disk to resume from (looked in "
        f"{folder}); its 2 recorded steps are kept. `rlstudio resume 1 --from-scratch` "
        "trains it again as a new run"
    )
    with Store(db) as store:
        before = store.run(1)
        assert before.status == RunStatus.COMPLETED and before.last_step == 2
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2]

    assert main(["--db", db, "resume", "1", "--from-scratch", "--steps", "2"]) == 0
    assert "run 2 completed: 2 steps" in capsys.readouterr().out
    with Store(db) as store:
        new, old = store.runs()
        assert (new.id, new.parent_run_id, new.name) == (2, 1, f"{old.name} (again)")
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2]  # untouched
        assert old.status == RunStatus.COMPLETED and old.last_step == 2
        assert "a fresh start of run 1's settings" in [e.message for e in store.logs(2)]
        assert "started over as run 2" in [e.message for e in store.logs(1)]


def test_resume_with_a_lower_learning_rate_uses_and_records_it(db, tmp_path, capsys):
    train(db, 2, 2, "--set", "training.learning_rate=3e-4")
    assert main(["--db", db, "resume", "1", "--set", "model.name=gpt2"]) == 2
    assert "model.name cannot change when a run is resumed; these can: training.learning_rate" in (
        capsys.readouterr().err
    )
    changes = ["--set", "training.learning_rate=1e-5", "--set", "algorithm.kl_coef=0.5"]
    assert main(["--db", db, "resume", "1", "--steps", "4", *changes]) == 0
    with Store(db) as store:
        used = store.metrics(1, keys=["lr", "objective/kl_coef"])
        lr, kl = used["lr"], used["objective/kl_coef"]
        assert dict(zip(lr.steps.tolist(), lr.values.tolist())) == pytest.approx(
            {1: 3e-4, 2: 3e-4, 3: 1e-5, 4: 1e-5}
        )
        # the coefficient each step started with (an adaptive one moves after)
        assert kl.values[[0, 2]].tolist() == pytest.approx([0.01, 0.5])
        config = store.run_config(1)
        assert config["training"]["learning_rate"] == 1e-5 and store.run(1).total_steps == 4
        logs = [e.message for e in store.logs(1)]
    assert (
        "resumed with training.learning_rate 0.0003 -> 1e-05, algorithm.kl_coef 0.01 -> 0.5, "
        "training.steps 2 -> 4"
    ) in logs
    state = read_trainer_state(tmp_path / "runs-checkpoints" / "run-1" / "step_4")
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)


def test_a_database_file_deleted_mid_run_is_not_reported_completed(tmp_path):
    path = tmp_path / "del.db"
    db = f"sqlite:///{path}"
    proc = cli("--db", db, "train", str(TINY_RECIPE), "--steps", "8")
    with Store(db) as store:
        wait_for(proc, store, lambda _st, run: run.last_step >= 2)
    for name in ("del.db", "del.db-wal", "del.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 2, err
    assert "completed" not in out
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        f"rlstudio: error: the database file {path} was deleted while run 1 was training: "
        "the run is not stored as finished; its last "
    )
    assert "rows are kept in" in last
    assert "training goes on and its rows are kept in memory" in err  # said when it happened
    assert not path.exists()


def test_a_save_cut_short_is_cleaned_up_by_the_next_start_of_the_run(db, tmp_path):
    train(db, 2, 2)
    folder = tmp_path / "runs-checkpoints" / "run-1"
    partial = folder / ".step_3.tmp4242" / "model"  # what a SIGKILL mid-save leaves
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    assert main(["--db", db, "resume", "1", "--steps", "3"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["step_2", "step_3"]
    with Store(db) as store:
        logs = [e.message for e in store.logs(1)]
    assert (
        "removed .step_3.tmp4242 (2 MB): a checkpoint whose save was cut short when the run "
        "was last killed"
    ) in logs


def test_db_as_a_plain_path_and_a_mistyped_one(tmp_path, capsys):
    path = tmp_path / "runs.db"
    with Store(f"sqlite:///{path}") as store:
        store.create_run(
            name="r", config={}, algorithm="ppo", model="tiny-random", seed=0, total_steps=3
        )
    assert main(["--db", str(path), "runs", "--json"]) == 0
    assert '"id": 1' in capsys.readouterr().out
    typo = tmp_path / "tpyo" / "runs.db"
    assert main(["--db", str(typo), "runs"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"rlstudio: error: no database at {typo}: check --db (`rlstudio train --db {typo}` "
        "makes a new one)"
    )
    assert not typo.parent.exists()  # no folder, no empty database
    assert main(["--db", f"sqlite:///{typo}", "resume", "1"]) == 2
    assert not typo.parent.exists()


# Signals at start-up and a second SIGTERM: tests/core/cli/test_signals.py (real processes).
