"""Real tiny-random runs built to fail, trained with `rlstudio train` as a user would: each
is diagnosed, on its console as the finding appears and by `rlstudio doctor` afterwards;
the healthy tiny recipe makes nothing above a note; `doctor.pause_on` stops a run that
can then be resumed with a safer setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli.main import main
from core.store import RunStatus, Store
from tests.core.helpers import TINY_RECIPE


def train(capsys, db: str, steps: int, *settings: str) -> str:
    sets = [arg for s in ("training.checkpoint_every=0", *settings) for arg in ("--set", s)]
    assert main(["--db", db, "train", str(TINY_RECIPE), "--steps", str(steps), *sets]) == 0
    return capsys.readouterr().err


def doctor(capsys, db: str, *args: str) -> dict:
    assert main(["--db", db, "doctor", "1", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'runs.db').as_posix()}"


def test_a_learning_rate_of_half_is_diagnosed_at_its_second_step(capsys, db):
    err = train(capsys, db, 6, "training.learning_rate=0.5")
    assert "doctor: critical at step 2, kl_runaway" in err
    report = doctor(capsys, db)
    assert report["source"] == "stored"
    kl = next(f for f in report["findings"] if f["kind"] == "kl_runaway")
    assert (kl["step"], kl["severity"]) == (2, "critical")
    assert kl["evidence"]["objective/kl"] > 10 * 6.0 and "learning_rate" in kl["suggestion"]
    # the rules over the stored metrics find what the run found live
    rerun = doctor(capsys, db, "--rerun")
    assert rerun["source"] == "rerun"
    assert {(f["kind"], f["step"]) for f in rerun["findings"]} >= {("kl_runaway", 2)}


def test_a_constant_reward_is_no_learning_signal(capsys, db, tmp_path: Path):
    code = tmp_path / "constant.py"
    code.write_text("def reward(prompt, completion, **columns):\n    return 0.5\n")
    component = f'[{{kind = "python", params = {{path = "{code.as_posix()}"}}}}]'
    err = train(capsys, db, 6, f"reward.components={component}")
    assert "doctor: warning at step 5, no_learning_signal" in err
    found = {f["kind"]: f for f in doctor(capsys, db)["findings"]}
    assert found["no_learning_signal"]["evidence"]["reward/std"] == 0.0


def test_completions_cut_at_three_tokens_are_truncation(capsys, db):
    # A stop string tiny-random writes now and then lets its completions end by themselves
    # (it never writes EOS): with 8 tokens about half do; with 3 nearly all are cut.
    err = train(capsys, db, 6, 'generation.stop=["y"]', "generation.max_new_tokens=3")
    assert "doctor: warning at step 5, truncation" in err
    found = {f["kind"]: f for f in doctor(capsys, db)["findings"]}
    assert found["truncation"]["evidence"]["truncated_frac"] >= 0.8
    assert found["truncation"]["evidence"]["max_new_tokens"] == 3


def test_the_healthy_tiny_recipe_makes_nothing_above_a_note(capsys, db):
    train(capsys, db, 20)  # the bench's 20 steps (its 40 make no more: see bench/doctor.py)
    report = doctor(capsys, db)
    assert [f for f in report["findings"] if f["severity"] != "info"] == []
    assert main(["--db", db, "doctor", "1"]) == 0
    out = capsys.readouterr().out
    assert "as it recorded them" in out  # the notes it stored (truncation: it never ends)


def test_pause_on_critical_stops_with_a_checkpoint_and_resumes_with_a_safer_setting(capsys, db):
    err = train(capsys, db, 6, "training.learning_rate=0.5", 'doctor.pause_on="critical"')
    assert "Paused by the doctor at step 2 (critical: kl_runaway)" in err
    with Store(db) as store:
        run = store.run(1)
        assert (run.status, run.last_step) == (RunStatus.STOPPED, 2)
        assert [c.step for c in store.checkpoints(1)] == [2]
    assert main(["--db", db, "resume", "1", "--set", "training.learning_rate=1e-5"]) == 0
    capsys.readouterr()
    with Store(db) as store:
        assert (store.run(1).status, store.run(1).last_step) == (RunStatus.COMPLETED, 6)


def test_bad_doctor_input_is_one_line(capsys, db):
    train(capsys, db, 1)
    assert main(["--db", db, "doctor", "1", "--save"]) == 2
    assert "give --rerun too" in capsys.readouterr().err
    assert main(["--db", db, "doctor", "1", "--rerun", "--set", "training.steps=3"]) == 2
    assert "only [doctor] settings" in capsys.readouterr().err
    assert main(["--db", db, "doctor", "9"]) == 2
    assert "9" in capsys.readouterr().err
    assert main(["--db", db, "train", str(TINY_RECIPE), "--set", 'doctor.disable=["kl"]']) == 2
    assert "unknown rule 'kl'" in capsys.readouterr().err
