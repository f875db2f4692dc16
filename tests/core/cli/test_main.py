"""`rlstudio` as a user runs it: real processes, a real SQLite file, real exports."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli.main import main
from core.store import RunStatus, Store
from tests.core.helpers import TINY_RECIPE


def rlstudio(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def start_long_run(db: str, checkpoint_every: int, **popen) -> subprocess.Popen:
    """`rlstudio train` of the tiny recipe for 500 steps, in its own process."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "--db",
            db,
            "train",
            str(TINY_RECIPE),
            "--steps",
            "500",
            "--set",
            f"training.checkpoint_every={checkpoint_every}",
        ],
        env=os.environ.copy(),
        **popen,
    )


def wait_for(proc: subprocess.Popen, store: Store, ready) -> None:
    """Poll the store until ready(runs) while the process lives (4 minutes at most)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = store.runs()
        if runs and ready(store, runs[0]):
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    pytest.fail("the run never got there")


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_train_list_export_end_to_end(db, tmp_path):
    done = rlstudio("--db", db, "train", str(TINY_RECIPE), "--steps", "3", "--name", "e2e")
    assert done.returncode == 0, done.stderr
    assert "run 1 completed: 3 steps" in done.stdout
    listed = rlstudio("--db", db, "runs", "--json")
    runs = json.loads(listed.stdout)
    assert [(r["name"], r["status"], r["last_step"]) for r in runs] == [("e2e", "completed", 3)]
    with Store(db) as store:
        assert sorted(store.metrics(1)["reward/mean"].steps.tolist()) == [1, 2, 3]
        assert store.samples(1, limit=100)[0].prompt == "Once upon a time"
        assert store.run_config(1)["algorithm"]["name"] == "ppo"
    out = tmp_path / "exported"
    exported = rlstudio("--db", db, "export", "1", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = model.generate(
        **tok("Once upon a time", return_tensors="pt"),
        max_new_tokens=4,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
    )
    assert ids.shape[1] > len(tok("Once upon a time")["input_ids"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/no/such/model"], "model path not found: /no/such/model"),
        (["--model", "README.md"], "README.md is not a model"),
        (
            ["--set", "training.learning_rate=5"],
            "training.learning_rate = 5.0: must be at most 1.0",
        ),
        (["--set", "data.prompts=EMPTY"], "the prompt set is empty"),
        (["--set", "training.stepz=3"], "unknown setting 'training.stepz'"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(db, tmp_path, capsys, args, message):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = [a.replace("EMPTY", str(empty)) for a in args]
    if "README.md" in args:
        args[args.index("README.md")] = str(Path(__file__).parents[3] / "README.md")
    assert main(["--db", db, "train", str(TINY_RECIPE), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    with Store(db) as store:
        assert store.runs() == []  # nothing half-started


def test_bad_toml_and_unknown_runs_exit_2(db, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nsteps = = 3\n")
    assert main(["--db", db, "train", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    Store(db).close()  # a database without that run (a missing one: test_integrity.py)
    assert main(["--db", db, "resume", "42"]) == 2
    assert "no run with id 42" in capsys.readouterr().err
    assert main(["--db", db, "export", "42", "--out", str(tmp_path / "x")]) == 2


def test_a_broken_reward_marks_the_run_failed_with_its_message(db, tmp_path, capsys):
    reward = tmp_path / "bad_reward.py"
    reward.write_text("def reward(prompt, completion, **kw):\n    return 1 / 0\n")
    code = main(
        [
            "--db",
            db,
            "train",
            str(TINY_RECIPE),
            "--steps",
            "2",
            "--set",
            f'reward.components=[{{kind="python", params={{path="{reward}"}}}}]',
        ]
    )
    assert code == 2
    assert "line 2: ZeroDivisionError" in capsys.readouterr().err
    with Store(db) as store:
        run = store.runs()[0]
        assert run.status == RunStatus.FAILED
        assert "line 2: ZeroDivisionError" in run.error


def test_sigkill_mid_run_leaves_a_sound_database_and_resume_carries_on(db, tmp_path):
    proc = start_long_run(db, 3, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = Store(db)
    wait_for(proc, store, lambda st, run: st.checkpoints(run.id) and run.last_step >= 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    store.close()

    db_file = tmp_path / "runs.db"
    with sqlite3.connect(db_file) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with Store(db) as store:  # the next start notices the dead run
        run = store.runs()[0]
        assert run.status == RunStatus.INTERRUPTED
        ckpt = store.last_checkpoint(run.id).step
    target = ckpt + 3
    resumed = rlstudio("--db", db, "resume", str(run.id), "--steps", str(target))
    assert resumed.returncode == 0, resumed.stderr
    with Store(db) as store:
        after = store.run(run.id)
        steps = store.metrics(run.id)["reward/mean"].steps.tolist()
        logs = [entry.message for entry in store.logs(run.id)]
    assert after.status == RunStatus.COMPLETED and after.last_step == target
    assert steps == list(range(1, target + 1))  # no gap, no duplicate
    assert any(f"at step {ckpt}" in line for line in logs)


def test_sigterm_stops_cleanly_with_a_checkpoint_and_resume_continues(db):
    proc = start_long_run(db, 0, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Store(db) as store:
        wait_for(proc, store, lambda _st, run: run.last_step >= 2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        run = store.runs()[0]
        assert f"run {run.id} stopped: {run.last_step} steps" in out
        assert run.status == RunStatus.STOPPED
        assert "stopping after the current step" in err
        assert store.last_checkpoint(run.id).step == run.last_step  # nothing finished is lost
    resumed = rlstudio("--db", db, "resume", str(run.id), "--steps", str(run.last_step + 2))
    assert resumed.returncode == 0, resumed.stderr
    assert f"completed: {run.last_step + 2} steps" in resumed.stdout


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`rlstudio runs --json | head -3`: the pipe closes after a few lines; the CLI stops
    quietly (it printed two tracebacks, BrokenPipe then its own handler's)."""
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    with Store(db) as store:
        for i in range(300):  # output well past a pipe's buffer, so the writer meets the close
            store.create_run(
                name=f"run {i}", config={}, algorithm="ppo", model="m", seed=0, total_steps=1
            )
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "--db", db, "runs", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout.readline()  # the first line, then the reader goes away
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, err
        assert "Traceback" not in err and "Error" not in err, err
