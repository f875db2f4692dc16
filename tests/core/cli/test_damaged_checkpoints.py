"""`rlstudio resume` with the newest checkpoint damaged (issue 22 items 1 and 3): it carries
on from the newest good one and says what it skipped and why; with none usable it says so
in one line and keeps the run as it was; an old pickled trainer state resumes only when it
holds plain data, and one that would run code is refused without running it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from core.cli.main import main
from core.store import RunStatus, Store
from core.training.checkpoint import (
    LEGACY_STATE_FILE,
    MANIFEST,
    STATE_JSON,
    STATE_TENSORS,
    checkpoint_problem,
    read_trainer_state,
)
from tests.core.helpers import TINY_RECIPE


def _train(db: str, steps: int, every: int) -> None:
    args = ["--db", db, "train", str(TINY_RECIPE), "--steps", str(steps)]
    assert main([*args, "--set", f"training.checkpoint_every={every}"]) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, Path]:
    """One run of 4 steps with checkpoints at steps 2 and 4; each test damages step 4, and
    its resume (to step 4 again) saves a good step 4 for the next."""
    folder = tmp_path_factory.mktemp("damage")
    db = f"sqlite:///{folder / 'runs.db'}"
    _train(db, 4, 2)
    return db, folder / "runs-checkpoints" / "run-1"


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


DAMAGES = {
    "weights truncated": (
        lambda d: _truncate(d / "model" / "model.safetensors"),
        "model/model.safetensors is truncated (",
    ),
    "weights corrupted": (
        lambda d: _flip_bytes(d / "model" / "model.safetensors"),
        "model/model.safetensors is corrupted (its sha256 differs",
    ),
    "tensors emptied": (
        lambda d: (d / STATE_TENSORS).write_bytes(b""),
        f"{STATE_TENSORS} is truncated (0 of ",
    ),
    "state overwritten": (
        lambda d: _flip_bytes(d / STATE_JSON),
        f"{STATE_JSON} is corrupted",
    ),
    "config removed": (
        lambda d: (d / "model" / "config.json").unlink(),
        "model/config.json is missing",
    ),
    "manifest removed": (
        lambda d: (d / MANIFEST).unlink(),
        f"{MANIFEST} is missing: the checkpoint is incomplete",
    ),
    "folder removed": (shutil.rmtree, "its folder "),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_newest_checkpoint_is_skipped_with_a_line_saying_why(trained, damage, capsys):
    db, folder = trained
    assert checkpoint_problem(folder / "step_4") is None  # the previous resume saved it anew
    harm, why = DAMAGES[damage]
    harm(folder / "step_4")
    capsys.readouterr()
    assert main(["--db", db, "resume", "1"]) == 0
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if "skipped checkpoint" in line]
    assert len(skipped) == 1 and skipped[0].startswith("[warning] skipped checkpoint step 4: ")
    assert why in skipped[0]
    with Store(db) as store:
        run = store.run(1)
        assert (run.status, run.last_step) == (RunStatus.COMPLETED, 4)
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2, 3, 4]  # 3, 4 again
        logs = [e.message for e in store.logs(1)]
        assert skipped[0].removeprefix("[warning] ") in logs
        assert f"resumed from {folder / 'step_2'} at step 2" in logs
    assert checkpoint_problem(folder / "step_4") is None


def test_with_no_usable_checkpoint_resume_says_so_and_keeps_the_run(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    _train(db, 2, 1)
    folder = tmp_path / "runs-checkpoints" / "run-1"
    _truncate(folder / "step_2" / "model" / "model.safetensors")
    (folder / "step_1" / STATE_TENSORS).write_bytes(b"")
    capsys.readouterr()
    assert main(["--db", db, "resume", "1", "--steps", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(
        "rlstudio: error: run 1 has no usable checkpoint to resume from (step 2: "
        "model/model.safetensors is truncated ("
    )
    assert f"; step 1: {STATE_TENSORS} is truncated (0 of " in err
    assert err.endswith(
        "its 2 recorded steps are kept. `rlstudio resume 1 --from-scratch` trains it again "
        "as a new run"
    )
    with Store(db) as store:
        run = store.run(1)
        assert (run.status, run.last_step, run.total_steps) == (RunStatus.COMPLETED, 2, 2)
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2]
        assert [c.step for c in store.checkpoints(1)] == [1, 2]
    assert main(["--db", db, "export", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlstudio: error: run 1 has no usable checkpoint to export (step 2: ")


def _as_saved_by_an_earlier_version(step_dir: Path, extra: dict | None = None) -> None:
    """The layout before 0.3: the trainer state pickled in one trainer_state.pt."""
    state = read_trainer_state(step_dir)
    torch.save(dict(state, **(extra or {})), step_dir / LEGACY_STATE_FILE)
    for name in (STATE_JSON, STATE_TENSORS, MANIFEST):
        (step_dir / name).unlink()


class _RunsCode:
    """Unpickled in full, this runs a shell command (it leaves a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_an_old_checkpoint_of_plain_data_resumes_and_the_log_says_how(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    _train(db, 2, 2)
    step_dir = tmp_path / "runs-checkpoints" / "run-1" / "step_2"
    _as_saved_by_an_earlier_version(step_dir)
    capsys.readouterr()
    assert main(["--db", db, "resume", "1", "--steps", "3"]) == 0
    err = capsys.readouterr().err
    assert "skipped checkpoint" not in err
    assert "step_2 was saved by an earlier version (a pickled trainer_state.pt)" in err
    assert "torch's restricted unpickler" in err
    with Store(db) as store:
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2, 3]
        assert any(e.message.startswith(f"resumed from {step_dir}") for e in store.logs(1))
    assert checkpoint_problem(step_dir.parent / "step_3") is None  # saved the new way


def test_an_old_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    _train(db, 4, 2)
    folder = tmp_path / "runs-checkpoints" / "run-1"
    marker = tmp_path / "code-ran"
    _as_saved_by_an_earlier_version(folder / "step_4", {"payload": _RunsCode(marker)})
    # the payload is real: a full unpickle of a copy runs it
    shutil.copy(folder / "step_4" / LEGACY_STATE_FILE, tmp_path / "copy.pt")
    torch.load(tmp_path / "copy.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    capsys.readouterr()
    assert main(["--db", db, "export", "1", "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "exported run 1 (step 2)" in out and "skipped checkpoint step 4: " in err
    assert not marker.exists()
    assert main(["--db", db, "resume", "1"]) == 0
    err = capsys.readouterr().err
    assert (
        "[warning] skipped checkpoint step 4: trainer_state.pt (a checkpoint of an earlier "
        f"version) holds {os.system.__module__}.system, which is not plain data: refused, as "
        "loading it could run code"
    ) in err
    assert not marker.exists()
    with Store(db) as store:
        assert store.metrics(1)["reward/mean"].steps.tolist() == [1, 2, 3, 4]  # from step 2
