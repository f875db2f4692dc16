"""User reward code in a warm worker process (core.rewards.user_code.sandbox), hostile code
included.

One worker per module is shared by most tests, and every test leaves it usable, which is
itself the point: after each failure the same object scores the next batch. The whole run
(with its pause and resume) is in test_reward_pause.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.rewards import RewardConfigError, RewardError, SandboxedReward, build_reward
from core.rewards.user_code.worker import TailBuffer
from tests.core.helpers import ROOT

HOSTILE = """
import math
import os
import signal
import sys


def reward(prompt, completion, reference=""):
    if completion == "raise":
        return 1 / len(reference)  # raise
    if completion == "loop":
        while True: pass  # loop
    if completion == "nan":
        return math.nan
    if completion == "text":
        return "high"
    if completion == "exit":
        sys.exit(3)  # exit
    if completion == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if completion == "hog":
        hoard = []
        while True:
            hoard.append(bytearray(16 * 1024 * 1024))  # hog
    if completion == "spam":
        for i in range(3000):
            print(f"line {i:04d} " + "x" * 990)  # 1001 characters with the newline
    if completion == "chatty":
        print("scoring", completion, reference)
    return float(len(completion)) + (1.0 if reference and reference in completion else 0.0)
"""

BATCHED = """
import sys


def reward(prompts, completions, **columns):
    if prompts[0] == "short":
        return [1.0]
    if prompts[0] == "light":
        heavy = ("torch", "transformers", "core.rewards.builtin.builtins", "core.rewards.composite")
        return [float(any(name in sys.modules for name in heavy))] * len(completions)
    bonus = columns.get("bonus", [0.0] * len(completions))
    return [float(len(c)) + b for c, b in zip(completions, bonus)]
"""

MAX_OUTPUT = 5000


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def line_of(path: Path, marker: str) -> int:
    """1-based number of the line of ``path`` that ends with ``# marker``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"no line marked {marker!r} in {path}")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rewards")
    write(directory, "hostile.py", HOSTILE)
    write(directory, "batched.py", BATCHED)
    return directory


@pytest.fixture(scope="module")
def hostile(files: Path) -> Iterator[SandboxedReward]:
    with SandboxedReward(
        files / "hostile.py", time_limit_s=2, memory_limit_mb=512, max_output_chars=MAX_OUTPUT
    ) as reward:
        yield reward


def four(bad: str) -> tuple[list[str], list[str]]:
    """A batch of four whose sample 2 is ``bad``."""
    return ["p"] * 4, ["a", "bb", bad, "c"]


def assert_usable(reward: SandboxedReward) -> None:
    """The object scores a good batch (starting a fresh worker if the last one is gone)."""
    assert reward(["p", "p"], ["ok", "fine"]) == [2.0, 4.0]
    assert reward.pid is not None and alive(reward.pid)


# --- working code ---------------------------------------------------------------------


def test_batched_reward_with_columns_in_a_warm_worker(files: Path) -> None:
    with SandboxedReward(files / "batched.py") as reward:
        assert reward(["p", "q"], ["ab", "abc"]) == [2.0, 3.0]
        pid = reward.pid
        assert pid is not None and pid != os.getpid()
        assert reward(["p", "q", "r"], ["", "x", "xyz"], bonus=[0.5, 0, -1]) == [0.5, 1.0, 2.0]
        assert reward.pid == pid  # the same worker scores every batch
        assert reward(["light"], ["x"]) == [0.0]  # it imports neither torch nor the built-ins
    assert reward.pid is None and not alive(pid)


def test_per_sample_reward_gets_its_row_and_its_prints_are_passed_on(
    hostile: SandboxedReward,
) -> None:
    chunks: list[str] = []
    hostile.on_output = chunks.append
    try:
        scores = hostile(["q1", "q2"], ["chatty", "Rome"], reference=["tty", "Oslo"], extra=[1, 2])
    finally:
        hostile.on_output = None
    assert scores == [7.0, 4.0]
    assert hostile.last_output == chunks[0] == "scoring chatty tty\n"
    assert hostile(["p"], ["quiet"]) == [5.0]
    assert hostile.last_output == ""


# --- hostile or broken code: one clear message each, and the reward keeps working ---------

CASES = {
    # completion: (message, sample index, whether the message names a line)
    "raise": ("hostile.py line {line}: ZeroDivisionError: division by zero (sample 2)", 2, True),
    "loop": ("hostile.py line {line}: took longer than 2 s on a batch of 4 (sample 2)", 2, True),
    "nan": ("reward 'hostile' returned nan for sample 2; scores must be finite", 2, False),
    "text": ("reward 'hostile' returned a non-number for sample 2: 'high'", 2, False),
    "exit": (
        "hostile.py line {line}: sys.exit(3) was called; a reward must return its scores, "
        "not exit (sample 2)",
        2,
        True,
    ),
    "kill": (
        "hostile.py: the reward worker died (signal SIGKILL) while scoring a batch of 4 (sample 2)",
        2,
        False,
    ),
    "hog": (
        "hostile.py line {line}: MemoryError: the reward used more than the worker's 512 MB "
        "limit (sample 2)",
        2,
        True,
    ),
}
REPLACED = {"loop", "kill", "hog"}  # the worker cannot carry on after these


@pytest.mark.parametrize("bad", list(CASES))
def test_hostile_code_gives_one_clear_error(
    hostile: SandboxedReward, files: Path, bad: str
) -> None:
    if bad == "kill" and not hasattr(signal, "SIGKILL"):
        pytest.skip("needs POSIX signals")
    if bad == "hog" and not sys.platform.startswith("linux"):
        pytest.skip("the memory limit is enforced on Linux")
    message, sample, has_line = CASES[bad]
    line = line_of(files / "hostile.py", bad) if has_line else None
    hostile.start()
    pid = hostile.pid
    with pytest.raises(RewardError) as info:
        hostile(*four(bad))
    assert str(info.value) == message.format(line=line)
    assert (info.value.sample_index, info.value.lineno) == (sample, line)
    if bad in REPLACED:
        assert hostile.pid is None and not alive(pid)
    assert_usable(hostile)
    assert (hostile.pid == pid) == (bad not in REPLACED)


def test_wrong_length_names_the_counts(files: Path) -> None:
    with SandboxedReward(files / "batched.py", name="len") as reward:
        with pytest.raises(
            RewardError, match=r"^reward 'len' returned 1 scores for 3 completions$"
        ):
            reward(["short"] * 3, ["a", "b", "c"])
        assert reward(["p"], ["abcd"]) == [4.0]


def test_printing_megabytes_keeps_a_bounded_tail(hostile: SandboxedReward) -> None:
    assert hostile(*four("spam")) == [1.0, 2.0, 4.0, 1.0]
    output = hostile.last_output
    assert len(output) <= MAX_OUTPUT
    note, _, kept = output.partition("\n")
    assert note.startswith("[output cut: ") and note.endswith(" earlier characters dropped]")
    dropped = int(note.removeprefix("[output cut: ").split(" ")[0].replace(",", ""))
    assert dropped + len(kept) == 3000 * 1001  # every character is either kept or counted
    assert kept.endswith("line 2999 " + "x" * 990 + "\n")
    assert_usable(hostile)


def test_tail_buffer_keeps_short_output_whole() -> None:
    buffer = TailBuffer(10)
    buffer.write("abc")
    buffer.write("def\n")
    assert buffer.getvalue() == "abcdef\n"


def test_reload_picks_up_a_fixed_file(tmp_path: Path) -> None:
    path = write(tmp_path, "letter.py", "def reward(prompt, completion):\n    return 1 / 0\n")
    with SandboxedReward(path) as reward:
        with pytest.raises(RewardError, match=r"^letter\.py line 2: ZeroDivisionError"):
            reward(["p"], ["c"])
        old = reward.pid
        path.write_text("def reward(prompt, completion):\n    return completion.count('e')\n")
        reward.reload()
        assert reward.pid != old and not alive(old)
        assert reward(["p", "p"], ["eel", "xyz"]) == [2.0, 0.0]


def test_a_file_that_does_not_load(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "x = 1\n\ndef reward(prompt, completion)\n    return 1\n")
    reward = SandboxedReward(path)
    with pytest.raises(RewardConfigError, match=r"syntax error in .*broken\.py at line 3"):
        reward.start()
    assert reward.pid is None
    with pytest.raises(RewardError, match=r"broken\.py at line 3"):  # while scoring: RewardError
        reward(["p"], ["c"])
    exits = write(tmp_path, "exits.py", "import sys\nsys.exit('no')\n")
    with pytest.raises(RewardConfigError, match=r"exits\.py failed to load: SystemExit: no"):
        SandboxedReward(exits).start()
    with pytest.raises(RewardConfigError, match="reward file not found"):
        SandboxedReward(tmp_path / "missing.py")


def test_a_file_that_hangs_while_loading_is_stopped(tmp_path: Path) -> None:
    pids = tmp_path / "pid"
    path = write(
        tmp_path,
        "slow.py",
        f"import os\nopen({str(pids)!r}, 'w').write(str(os.getpid()))\nwhile True: pass\n",
    )
    reward = SandboxedReward(path, load_time_limit_s=1)
    with pytest.raises(RewardError, match=r"^slow\.py: loading the file took longer than 1 s$"):
        reward.start()
    assert reward.pid is None and not alive(int(pids.read_text()))


# --- through build_reward: what the loop and the studio's "Try it" use -------------------


def test_composite_runs_python_in_workers_and_closes_them(files: Path) -> None:
    components = [
        _cfg("python", name="size", path=str(files / "batched.py")),
        _cfg("python", weight=0.5, path="hostile.py"),
    ]
    printed: list[tuple[str, str]] = []
    with build_reward(components, base_dir=files, on_output=lambda *a: printed.append(a)) as r:
        workers = [c.fn for c in r.components]
        pids = [w.pid for w in workers]
        assert all(pid is not None and pid != os.getpid() for pid in pids)
        result = r(["p", "p"], ["ab", "chatty"], reference=["", "tty"])
        assert result.components == {"size": [2.0, 6.0], "hostile": [2.0, 7.0]}
        assert result.total == [3.0, 9.5]
        assert printed == [("hostile", "scoring chatty tty\n")]
        with pytest.raises(RewardError, match=r"^reward 'hostile': hostile\.py line \d+: Zero"):
            r(["p"], ["raise"])
        r.reload()
        assert [w.pid for w in workers] != pids and not any(alive(p) for p in pids)
        pids = [w.pid for w in workers]
    assert all(w.pid is None for w in workers) and not any(alive(p) for p in pids)


def test_a_failed_build_stops_the_workers_it_started(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    write(tmp_path, "bad.py", "def reward(prompt, completion)\n")
    original = SandboxedReward.start

    def start(self: SandboxedReward) -> None:
        original(self)
        started.append(self.pid)

    monkeypatch.setattr(SandboxedReward, "start", start)
    with pytest.raises(RewardConfigError, match=r"bad\.py at line 1"):
        build_reward(
            [_cfg("python", path=str(files / "batched.py")), _cfg("python", path="bad.py")],
            base_dir=tmp_path,
        )
    assert len(started) == 1 and not alive(started[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_worker_exits_when_the_trainer_is_killed(files: Path) -> None:
    """No orphan: a worker stuck in user code still goes when its parent is SIGKILLed."""
    script = (
        "import sys\n"
        "from core.rewards import SandboxedReward\n"
        f"r = SandboxedReward({str(files / 'hostile.py')!r}, time_limit_s=None)\n"
        "r.start()\n"
        "print(r.pid, flush=True)\n"
        "r(['p'], ['loop'])\n"
    )
    trainer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        worker = int(trainer.stdout.readline())
        assert alive(worker)
        trainer.kill()
        trainer.wait(30)
        _wait_until(lambda: not alive(worker), timeout_s=30)
    finally:
        trainer.kill()
        trainer.stdout.close()


STUCK_IN_C = """
import re


def reward(prompts, completions, **columns):
    if completions[0] == "sum":
        return [float(sum(range(10**11)))] * len(completions)  # one C call, GIL held
    re.match(r"(a+)+$", "a" * 60 + "b")  # catastrophic backtracking, also one C call
    return [0.0] * len(completions)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
@pytest.mark.parametrize("completion", ["sum", "regex"])
def test_a_worker_stuck_in_one_c_call_dies_with_the_trainer(
    tmp_path: Path, completion: str
) -> None:
    """SIGKILL the trainer while the reward sits in a long C call (which a thread in the
    worker cannot interrupt): within seconds no process it started is left, the worker
    and multiprocessing's resource tracker included."""
    import psutil

    path = write(tmp_path, "stuck.py", STUCK_IN_C)
    script = (
        "from core.rewards import SandboxedReward\n"
        f"r = SandboxedReward({str(path)!r}, time_limit_s=None)\n"
        "r.start()\n"
        "print(r.pid, flush=True)\n"
        f"r(['p'], [{completion!r}])\n"
    )
    trainer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        worker = int(trainer.stdout.readline())
        _wait_until(lambda: psutil.Process(worker).cpu_times().user > 0.3, timeout_s=30)
        started = psutil.Process(trainer.pid).children(recursive=True)
        assert worker in [p.pid for p in started] and len(started) >= 2  # and the tracker
        trainer.kill()
        trainer.wait(30)
        _wait_until(lambda: not any(alive(p.pid) for p in started), timeout_s=5)
    finally:
        trainer.kill()
        trainer.stdout.close()


def _wait_until(condition, timeout_s: float) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _cfg(kind: str, name: str = "", weight: float = 1.0, **params):
    from core.config import RewardComponentConfig

    return RewardComponentConfig(kind=kind, weight=weight, name=name, params=params)


SPAWNS = """
import subprocess, time
from pathlib import Path

PIDS = Path(__file__).with_suffix(".pids")


def reward(prompt, completion):
    child = subprocess.Popen(["sleep", "777"])
    with PIDS.open("a") as fh:
        fh.write(f"{child.pid}\\n")
    if completion == "hang":
        time.sleep(600)
    return 1.0
"""


def _left(pids_file: Path) -> list[int]:
    """Those of the reward's children still running (a zombie awaiting its reaper is not)."""
    import psutil

    pids = [int(p) for p in pids_file.read_text().split()]
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_what_reward_code_starts_ends_with_the_worker(tmp_path):
    """A reward that starts `sleep 777`: nothing it started is left once the reward is
    closed (the end of a run), once a batch times out, or once a run is stopped."""
    import time

    path = tmp_path / "spawns.py"
    path.write_text(SPAWNS)
    pids = path.with_suffix(".pids")
    with SandboxedReward(path, time_limit_s=3) as reward:
        assert reward(["p"], ["ok"]) == [1.0]
        assert len(_left(pids)) == 1  # alive while the worker is
    deadline = time.monotonic() + 5
    while _left(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _left(pids) == []  # closed: the end of a run

    with SandboxedReward(path, time_limit_s=1) as reward:
        with pytest.raises(RewardError, match="took longer than 1 s"):
            reward(["p"], ["hang"])
        time.sleep(0.2)
        assert _left(pids) == []  # timed out: the worker and what it started are gone


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_a_stopped_run_leaves_none_of_its_rewards_children(tmp_path):
    from core.control import Control
    from core.events import Metrics
    from core.training.loop import train
    from tests.core.helpers import tiny_config

    path = tmp_path / "spawns.py"
    path.write_text(SPAWNS)
    cfg = tiny_config(
        {
            "reward.components": [{"kind": "python", "params": {"path": str(path)}}],
            "training.steps": 50,
            "training.checkpoint_every": 0,
        }
    )
    control = Control()
    for event in train(cfg, control):
        if isinstance(event, Metrics) and event.step == 1:
            control.stop()
    assert _left(path.with_suffix(".pids")) == []
