"""The CLI's manners as a shell user meets them: --version, a closed pipe, a log file
under nohup, and `rlstudio metrics`."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import __version__
from core.cli.main import main
from core.store import Store
from tests.core.helpers import ROOT, TINY_RECIPE


def shell(command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.parametrize("entry", ["core.cli", "studio.launcher"])
def test_version_prints_one_line_and_exits_0(entry):
    done = shell(f"{sys.executable} -m {entry} --version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"rlstudio {__version__}\n"


def test_runs_json_into_head_c_1_is_quiet_every_time(tmp_path):
    db = tmp_path / "runs.db"
    with Store(f"sqlite:///{db}") as store:
        for i in range(300):  # well past a pipe's buffer: the writer meets the closed end
            store.create_run(
                name=f"run {i}", config={}, algorithm="ppo", model="m", seed=0, total_steps=1
            )
    for _ in range(5):
        done = shell(f"{sys.executable} -m core.cli --db {db} runs --json | head -c 1")
        assert (done.returncode, done.stdout, done.stderr) == (0, "[", "")


def test_under_nohup_each_step_is_one_line_in_the_file_while_the_run_goes_on(tmp_path):
    log = tmp_path / "run.log"
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    cmd = [sys.executable, "-m", "core.cli", "--db", db, "train", str(TINY_RECIPE)]
    cmd += ["--steps", "500", "--set", "training.batch_size=2"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while "step 3/500" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert proc.poll() is None  # read while it still trains
        text = log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    steps = [line for line in text.splitlines() if line.startswith("step ")]
    assert steps[:3] == [s for s in steps[:3] if s.endswith("s/step")]
    assert [line.split()[1] for line in steps[:3]] == ["1/500", "2/500", "3/500"]
    assert "reward " in steps[0] and " kl " in steps[0]
    assert "\x1b" not in text and "\r" not in text and "━" not in text  # no bar frames
    assert "[info] training on 1 process" in text


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("metrics") / "runs.db")
    args = ["--db", db, "train", str(TINY_RECIPE), "--steps", "3"]
    assert main([*args, "--set", "training.batch_size=2"]) == 0
    return db


def test_metrics_csv_long_and_wide(trained, capsys):
    with Store(f"sqlite:///{trained}") as store:
        stored = store.metrics(1)
    capsys.readouterr()
    assert main(["--db", trained, "metrics", "1", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == sum(len(s.steps) for s in stored.values())
    reward = [float(r["value"]) for r in rows if r["key"] == "reward/mean"]
    assert reward == pytest.approx(list(stored["reward/mean"].values))
    assert main(["--db", trained, "metrics", "1", "--csv", "--wide"]) == 0
    wide = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["step"]) for r in wide] == [1, 2, 3]
    assert set(stored) <= set(wide[0])
    assert float(wide[2]["reward/mean"]) == pytest.approx(stored["reward/mean"].values[2])


def test_metrics_json_and_the_summary_table(trained, capsys):
    capsys.readouterr()
    assert main(["--db", trained, "metrics", "1", "--json", "--wide"]) == 0
    wide = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in wide] == [1, 2, 3] and "objective/kl" in wide[0]
    assert main(["--db", trained, "metrics", "1", "--json"]) == 0
    long = json.loads(capsys.readouterr().out)
    assert {"step", "wall_time", "key", "value"} == set(long[0])
    assert main(["--db", trained, "metrics", "1"]) == 0
    table = capsys.readouterr().out
    assert "reward/mean" in table and "first" in table and "max" in table


def test_metrics_of_a_missing_run_or_both_formats_exit_2(trained, capsys):
    capsys.readouterr()
    assert main(["--db", trained, "metrics", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no run with id 7" in err
    with pytest.raises(SystemExit) as exit_:
        main(["--db", trained, "metrics", "1", "--csv", "--json"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_metrics_piped_to_head_is_quiet(trained):
    done = shell(f"{sys.executable} -m core.cli --db {Path(trained)} metrics 1 --csv | head -c 1")
    assert (done.returncode, done.stdout, done.stderr) == (0, "s", "")
