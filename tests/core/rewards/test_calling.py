"""How a reward file's function is called (core.rewards.user_code.calling): TRL's keyword
call, this project's positional form kept for old files, and signatures that cannot take a
batch refused before the code runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.rewards import RewardSignatureError, load_reward_file


def load(tmp_path: Path, source: str, function: str = "reward"):
    path = tmp_path / "r.py"
    path.write_text(textwrap.dedent(source))
    return load_reward_file(path, function)


def test_trls_documented_rewards_get_their_keywords(tmp_path: Path) -> None:
    fn = load(
        tmp_path,
        """
        def accuracy(completions, solution, **kwargs):
            return [float(s in c) + len(kwargs["completion_ids"][i]) for i, (c, s) in
                    enumerate(zip(completions, solution))]
        """,
        "accuracy",
    )
    scores = fn(["q1", "q2"], ["it is 4", "no"], solution=["4", "5"], completion_ids=[[1], [1, 2]])
    assert scores == [2.0, 2.0]


def test_a_function_without_kwargs_gets_only_what_it_names(tmp_path: Path) -> None:
    fn = load(tmp_path, "def reward(completions):\n    return [len(c) for c in completions]\n")
    assert fn(["p"], ["abc"], solution=["x"], completion_ids=[[1]]) == [3]


def test_the_older_positional_forms_keep_working(tmp_path: Path) -> None:
    odd_names = load(tmp_path, "def reward(texts, outs):\n    return [len(o) for o in outs]\n")
    assert odd_names(["p"], ["ab"], reference=["r"]) == [2]
    prompts_first = load(
        tmp_path, "def reward(prompts, outputs, **columns):\n    return [len(columns)]\n"
    )
    assert prompts_first(["p"], ["ab"], reference=["r"]) == [1]


def test_a_signature_that_cannot_take_a_batch_is_refused_before_the_code_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    fn = load(
        tmp_path,
        f"""
        def reward(completions, answer):
            open({str(marker)!r}, "w").close()
            return [0.0]
        """,
    )
    with pytest.raises(RewardSignatureError, match=r"^r\.py: reward: .*'answer'.*\(reference\)"):
        fn(["p"], ["c"], reference=["x"])
    assert not marker.exists()
    per_sample = load(tmp_path, "def reward(prompt, completion, answer):\n    return 1.0\n")
    with pytest.raises(RewardSignatureError, match="missing a required argument: 'answer'"):
        per_sample(["p"], ["c"])
