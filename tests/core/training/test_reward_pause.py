"""A run whose reward code breaks: it pauses with one clear message, the user fixes the file
and resumes, and the run completes with every step stored exactly once (real SQLite store).

Each hostile reward fails on step 2 of 3 (sample 2 of 4 for per-sample rewards). Every
reward file appends its worker's pid to a file, so the tests can check that no worker
process outlives the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.algorithms.common import RunningMoments
from core.control import Control
from core.events import Checkpoint, Log, Metrics, RewardFailure, Status
from core.rewards import RewardError
from core.runner import resume_run, start_run
from core.store import RunStatus, Store
from core.training.loop import train
from core.training.steps import standardised
from tests.core.helpers import tiny_config

STEPS, BATCH = 3, 4

PER_SAMPLE = """
import math, os, signal, sys
open(PIDS, "a").write(f"{os.getpid()}\\n")
calls = 0

def reward(prompt, completion):
    global calls
    calls += 1
    if calls == 7:  # step 2, sample 2
        BAD  # bad
    return 0.5
"""

BATCHED = """
import os
open(PIDS, "a").write(f"{os.getpid()}\\n")
calls = 0

def reward(prompts, completions):
    global calls
    calls += 1
    return [0.5] if calls == 2 else [0.5] * len(completions)
"""

FIXED = """
import os
open(PIDS, "a").write(f"{os.getpid()}\\n")

def reward(prompt, completion):
    return 1.0
"""

CASES = {
    # name: (source, part of the message, sample index, whether it names the line)
    "raises": (PER_SAMPLE.replace("BAD", "1 / 0"), "ZeroDivisionError: division by zero", 2, 1),
    "loops": (PER_SAMPLE.replace("BAD", "while True: pass"), "took longer than 2 s", 2, 1),
    "nan": (PER_SAMPLE.replace("BAD", "return math.nan"), "returned nan for sample 2", 2, 0),
    "string": (PER_SAMPLE.replace("BAD", "return 'high'"), "non-number for sample 2: 'high'", 2, 0),
    "wrong_length": (BATCHED, "reward 'hostile' returned 1 scores for 4 completions", None, 0),
    "sys_exit": (PER_SAMPLE.replace("BAD", "sys.exit(3)"), "sys.exit(3) was called", 2, 1),
    "kills_itself": (
        PER_SAMPLE.replace("BAD", "os.kill(os.getpid(), signal.SIGKILL)"),
        "the reward worker died (signal SIGKILL) while scoring a batch of 4",
        2,
        0,
    ),
    "allocates_forever": (
        PER_SAMPLE.replace("BAD", "hoard = [bytearray(2**24) for _ in iter(int, 1)]"),
        "MemoryError: the reward used more than the worker's 512 MB limit",
        2,
        1,
    ),
}


def write_reward(path: Path, source: str) -> Path:
    path.write_text(source.lstrip().replace("PIDS", repr(str(path.with_suffix(".pids")))))
    return path


BAD_LINE = PER_SAMPLE.lstrip().splitlines().index("        BAD  # bad") + 1


def worker_pids(path: Path) -> list[int]:
    return [int(line) for line in path.with_suffix(".pids").read_text().split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"  # a zombie is gone too
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def config(reward: Path, **overrides):
    return tiny_config(
        {
            "training.steps": STEPS,
            "training.batch_size": BATCH,
            "training.checkpoint_every": 0,
            "reward.components": [{"kind": "python", "params": {"path": str(reward)}}],
            "reward.time_limit_s": 2.0,
            "reward.memory_limit_mb": 512,
            **overrides,
        }
    )


@pytest.fixture
def store(tmp_path: Path):
    with Store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        yield store


def steps_of(store: Store, run_id: int, key: str = "reward/mean") -> list[int]:
    return store.metrics(run_id)[key].steps.tolist()


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_reward_pauses_the_run_and_the_fixed_file_resumes_it(
    tmp_path: Path, store: Store, case: str
) -> None:
    source, part, sample, names_line = CASES[case]
    path = write_reward(tmp_path / "hostile.py", source)
    control = Control(pause_on_reward_error=True)
    events = []

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, RewardFailure):
            write_reward(path, FIXED)  # the user fixes the file...
        if isinstance(event, Status) and event.state == "paused":
            control.resume()  # ...and presses Resume

    run_id = start_run(config(path), store, name=case, control=control, on_event=on_event)

    [failure] = [e for e in events if isinstance(e, RewardFailure)]
    assert (failure.step, failure.component, failure.sample_index) == (2, "hostile", sample)
    assert part in failure.message
    if sample is not None:
        assert f"sample {sample}" in failure.message
        assert failure.prompt == "Once upon a time"
        stored = store.samples(run_id, step=2)[sample]
        assert failure.completion == stored.completion  # the same rollout, scored again
    line = BAD_LINE if names_line else None
    assert failure.lineno == line
    if line:
        assert f"hostile.py line {line}: " in failure.message
    states = [(e.state, e.step) for e in events if isinstance(e, Status)]
    assert states == [
        ("loading", 0),
        ("running", 0),
        ("paused", 1),
        ("running", 1),
        ("completed", STEPS),
    ]
    paused = next(e for e in events if isinstance(e, Status) and e.state == "paused")
    assert part in paused.message and "Fix the reward code, then resume" in paused.message

    run = store.run(run_id)
    assert run.status == RunStatus.COMPLETED and run.last_step == STEPS
    assert steps_of(store, run_id) == [1, 2, 3]  # every step exactly once
    rewards = store.metrics(run_id)["reward/mean"].values.tolist()
    assert rewards == [0.5, 1.0, 1.0]  # step 1 as first stored; step 2 scored by the fix
    assert [store.sample_count(run_id, step) for step in (1, 2, 3)] == [BATCH] * 3
    logged = [entry.message for entry in store.logs(run_id) if entry.level == "error"]
    assert logged == [f"reward failed at step 2: {failure.message}"]
    pids = worker_pids(path)
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)  # hostile, then fixed


def test_stop_while_paused_keeps_the_finished_steps(tmp_path: Path, store: Store) -> None:
    path = write_reward(tmp_path / "hostile.py", CASES["raises"][0])
    control = Control(pause_on_reward_error=True)
    events = []

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, Status) and event.state == "paused":
            control.stop()

    run_id = start_run(config(path), store, name="stop", control=control, on_event=on_event)
    assert events[-1] == Status("stopped", "Stopped by the user", 1, STEPS)
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [1]
    assert store.run(run_id).status == RunStatus.STOPPED
    assert steps_of(store, run_id) == [1]
    assert not any(alive(pid) for pid in worker_pids(path))


def test_without_pausing_the_run_fails_and_says_how_to_resume(tmp_path: Path, store: Store):
    """The CLI's way: the run ends failed, keeping step 1; `resume` after the fix completes."""
    path = write_reward(tmp_path / "hostile.py", CASES["raises"][0])
    with pytest.raises(RewardError) as info:
        start_run(config(path), store, name="cli", control=Control())
    message = str(info.value)
    assert f"line {BAD_LINE}: ZeroDivisionError: division by zero (sample 2)" in message
    assert "fix the reward, then `rlstudio resume 1` carries it on" in message
    run = store.run(1)
    assert run.status == RunStatus.FAILED and run.error == message
    assert steps_of(store, 1) == [1] and store.last_checkpoint(1).step == 1
    first = store.metrics(1)["reward/mean"].values.tolist()

    write_reward(path, FIXED)
    resume_run(store, 1, control=Control())
    assert store.run(1).status == RunStatus.COMPLETED
    assert steps_of(store, 1) == [1, 2, 3]
    assert store.metrics(1)["reward/mean"].values.tolist() == [*first, 1.0, 1.0]
    assert not any(alive(pid) for pid in worker_pids(path))


def test_printed_output_reaches_the_log_bounded(tmp_path: Path, store: Store) -> None:
    path = write_reward(
        tmp_path / "chatty.py",
        'import os\nopen(PIDS, "a").write(f"{os.getpid()}\\n")\nprint("loaded")\n\n'
        "def reward(prompts, completions):\n"
        "    for i in range(3000):\n"
        "        print(f'line {i} ' + 'x' * 1000)\n"
        "    return [0.5] * len(completions)\n",
    )
    events = list(train(config(path, **{"training.steps": 2})))
    printed = [e.message for e in events if isinstance(e, Log) and e.level == "reward"]
    assert printed[0] == "loaded"
    assert len(printed) == 3  # the import, then one bounded chunk per step
    for chunk in printed[1:]:
        assert len(chunk) <= 20_000
        assert chunk.startswith("[output cut: ") and chunk.endswith("line 2999 " + "x" * 1000)
    assert events[-1].state == "completed"
    assert not any(alive(pid) for pid in worker_pids(path))


def test_standardised_totals_use_every_batch_so_far() -> None:
    moments = RunningMoments()
    first = standardised(moments, torch.tensor([1.0, 3.0]))
    assert first.tolist() == pytest.approx([-0.7071068, 0.7071068])
    second = standardised(moments, torch.tensor([5.0, 7.0]))
    everything = torch.tensor([1.0, 3.0, 5.0, 7.0])
    expected = (torch.tensor([5.0, 7.0]) - everything.mean()) / everything.std()
    assert second.tolist() == pytest.approx(expected.tolist())


def test_normalized_rewards_resume_exactly(tmp_path: Path) -> None:
    """The logged reward stays raw; the running moments are saved with the checkpoint."""
    letter_e = Path(__file__).parents[3] / "assets" / "rewards" / "letter_e.py"
    common = {"training.steps": 4, "training.checkpoint_every": 2}
    normalized = config(letter_e, **common, **{"reward.normalize": True})
    straight = [e for e in train(normalized, checkpoint_dir=tmp_path / "a") if type(e) is Metrics]
    raw = [e for e in train(config(letter_e, **{"training.steps": 1})) if type(e) is Metrics]
    assert straight[0].values["reward/mean"] == raw[0].values["reward/mean"]
    assert straight[0].values["loss/value"] != pytest.approx(raw[0].values["loss/value"])
    resumed = [
        e
        for e in train(
            normalized, checkpoint_dir=tmp_path / "b", resume_from=tmp_path / "a" / "step_2"
        )
        if type(e) is Metrics
    ]
    assert [m.step for m in resumed] == [3, 4]
    for a, b in zip(straight[2:], resumed):
        for key in ("reward/mean", "loss/policy", "loss/value"):
            assert a.values[key] == pytest.approx(b.values[key], rel=1e-5, abs=1e-7), key
