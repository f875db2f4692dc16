"""User reward files (core.rewards.user_code.loader): the batched and per-sample forms, load
errors and runtime errors naming the line (and the sample), and the shipped example files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.rewards import RewardConfigError, RewardError, load_reward_file

ASSETS = Path(__file__).resolve().parents[3] / "assets"


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_user_file_batched_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "batched.py",
        """
        def reward(prompts, completions, **columns):
            return [float(len(c)) for c in completions]
        """,
    )
    fn = load_reward_file(path)
    assert fn.per_sample is False
    assert fn(["p", "q"], ["ab", "abc"]) == [2.0, 3.0]


def test_user_file_per_sample_form_gets_its_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "per_sample.py",
        """
        def reward(prompt, completion, reference):
            return 1.0 if reference in completion else 0.0
        """,
    )
    fn = load_reward_file(path)
    assert fn.per_sample is True
    scores = fn(["q1", "q2"], ["Paris", "Rome"], reference=["Paris", "Oslo"], extra=[1, 2])
    assert scores == [1.0, 0.0]


def test_user_file_missing(tmp_path: Path) -> None:
    with pytest.raises(RewardConfigError, match=r"reward file not found: .*nope\.py"):
        load_reward_file(tmp_path / "nope.py")


def test_user_file_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "x = 1\n\ndef reward(prompt, completion)\n    return 1\n")
    with pytest.raises(RewardConfigError, match=r"broken\.py at line 3") as info:
        load_reward_file(path)
    assert info.value.__cause__ is not None


def test_user_file_without_reward_lists_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "misnamed.py",
        """
        LIMIT = 3

        def score(prompt, completion):
            return 1.0
        """,
    )
    with pytest.raises(RewardConfigError, match=r"'reward' is missing.*defines: LIMIT, score"):
        load_reward_file(path)


def test_user_runtime_error_names_line_and_sample(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "reward.py",
        """
        def helper(n):
            return 1 / n


        def reward(prompt, completion, **columns):
            return helper(len(completion))
        """,
    )
    fn = load_reward_file(path)
    with pytest.raises(RewardError) as info:
        fn(["a"] * 4, ["x", "yy", "zzz", ""])
    err = info.value
    assert str(err) == "reward.py line 3: ZeroDivisionError: division by zero (sample 3)"
    assert (err.sample_index, err.lineno) == (3, 3)


def test_user_runtime_error_batched_has_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "batch_fail.py",
        """
        def reward(prompts, completions):
            raise ValueError("bad batch")
        """,
    )
    with pytest.raises(RewardError, match=r"^batch_fail\.py line 3: ValueError: bad batch$"):
        load_reward_file(path)(["a"], ["b"])


def test_same_file_loaded_twice_is_independent(tmp_path: Path) -> None:
    path = write(tmp_path, "r.py", "def reward(prompt, completion):\n    return 1.0\n")
    first = load_reward_file(path)
    path.write_text("def reward(prompt, completion):\n    return 2.0\n")
    second = load_reward_file(path)
    assert first(["p"], ["c"]) == [1.0]
    assert second(["p"], ["c"]) == [2.0]


def test_example_reward_files() -> None:
    letter_e = load_reward_file(ASSETS / "rewards" / "letter_e.py")
    assert letter_e(["", "", ""], ["eEab", "", "xyz"]) == [0.5, 0.0, 0.0]
    contains = load_reward_file(ASSETS / "rewards" / "contains_reference.py")
    assert contains(["q", "q"], ["It is Paris.", "Lyon"], reference=["paris", "Paris"]) == [
        1.0,
        0.0,
    ]
    template = load_reward_file(ASSETS / "rewards" / "template.py")
    assert template(["", ""], ["Done.", ""]) == [1.0, 0.0]
