"""Tests for core.rewards: built-ins, user reward files and the composite."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.rewards import (
    BUILTINS,
    CompositeReward,
    RewardComponent,
    RewardConfigError,
    RewardError,
    RewardResult,
    build_reward,
    load_reward_file,
)
from core.rewards.scores import component_means

ASSETS = Path(__file__).resolve().parents[3] / "assets"


def score(kind: str, completions: list[str], **params) -> list[float]:
    fn = BUILTINS[kind](**params)
    return fn([""] * len(completions), completions)


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def cfg(kind: str, name: str = "", weight: float = 1.0, **params) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, name=name, weight=weight, params=params)


# --- built-ins -----------------------------------------------------------------


def test_sentiment_polarity() -> None:
    pos, neg, neutral = score(
        "sentiment",
        [
            "I love this, it is wonderful and amazing!",
            "This is terrible, awful and I hate it.",
            "The train leaves at noon.",
        ],
    )
    assert pos > 0.5
    assert neg < -0.5
    assert abs(neutral) < 0.1


def test_sentiment_rejects_params() -> None:
    with pytest.raises(RewardConfigError, match=r"sentiment.*'mode'.*allowed parameters: none"):
        BUILTINS["sentiment"](mode="x")


def test_length_chars_and_words() -> None:
    assert score("length", ["abcde", "", "abcdefghij", "abcdefghijklmno"], target=10) == [
        -0.5,
        -1.0,
        0.0,
        -0.5,
    ]
    assert score("length", ["one two  three\nfour", "a"], target=4, unit="words") == [0.0, -0.75]


def test_length_tokens_uses_tokenizer() -> None:
    class CharTokenizer:
        def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
            assert add_special_tokens is False
            return [ord(c) for c in text]

    assert score("length", ["ab", "abcd"], target=4, unit="tokens", tokenizer=CharTokenizer()) == [
        -0.5,
        0.0,
    ]


def test_length_tokens_without_tokenizer() -> None:
    with pytest.raises(RewardConfigError, match="tokenizer"):
        BUILTINS["length"](target=5, unit="tokens")


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({}, r"length.*'target' is required"),
        ({"target": 0}, r"length.*'target'.*positive integer"),
        ({"target": -3}, r"length.*'target'.*positive integer"),
        ({"target": "10"}, r"length.*'target'.*positive integer"),
        ({"target": True}, r"length.*'target'.*positive integer"),
        ({"target": 5, "unit": "lines"}, r"length.*'unit'.*chars, words, tokens"),
        ({"target": 5, "size": 1}, r"length.*unknown parameter 'size'.*target, unit"),
    ],
)
def test_length_bad_params(params: dict, pattern: str) -> None:
    with pytest.raises(RewardConfigError, match=pattern):
        BUILTINS["length"](**params)


def test_keywords_counts_whole_words_case_insensitive() -> None:
    text = "The Cat sat. A cat! concatenate cats CAT_x cat"
    assert score("keywords", [text], keywords=["cat"]) == [3.0]
    assert score("keywords", [text], keywords=["cat"], case_sensitive=True) == [2.0]


def test_keywords_distinct_and_special_characters() -> None:
    text = "I like C++ and c++ and rust, rust, rust."
    assert score("keywords", [text], keywords=["c++", "rust", "go"]) == [5.0]
    assert score("keywords", [text], keywords=["c++", "rust", "go"], per_occurrence=False) == [2.0]
    assert score("keywords", ["a.b", "axb"], keywords=["a.b"]) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": "cat"}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": []}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": ["cat", 3]}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": ["cat"], "case_sensitive": "yes"}, r"keywords.*'case_sensitive'.*true"),
        ({"keywords": ["cat"], "per_occurrence": 1}, r"keywords.*'per_occurrence'.*true"),
    ],
)
def test_keywords_bad_params(params: dict, pattern: str) -> None:
    with pytest.raises(RewardConfigError, match=pattern):
        BUILTINS["keywords"](**params)


# --- user reward files ---------------------------------------------------------


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


# --- composite -----------------------------------------------------------------


def constant(value):
    return lambda prompts, completions, **columns: [value] * len(completions)


def test_composite_weights_and_components() -> None:
    reward = CompositeReward(
        [
            RewardComponent("a", 2.0, lambda p, c, **k: [float(len(x)) for x in c]),
            RewardComponent("b", -0.5, constant(1)),
        ]
    )
    result = reward(["p", "p"], ["ab", "abcd"])
    assert isinstance(result, RewardResult)
    assert result.total == [3.5, 7.5]
    assert result.components == {"a": [2.0, 4.0], "b": [1.0, 1.0]}


def test_composite_wrong_length() -> None:
    reward = CompositeReward([RewardComponent("x", 1.0, lambda p, c, **k: [0.0] * 5)])
    with pytest.raises(RewardError, match="reward 'x' returned 5 scores for 8 completions"):
        reward(["p"] * 8, ["c"] * 8)


@pytest.mark.parametrize("bad", [math.nan, math.inf, "0.5", [1.0]])
def test_composite_bad_value_names_component_and_sample(bad) -> None:
    reward = CompositeReward([RewardComponent("odd", 1.0, lambda p, c, **k: [0.0, 1.0, bad])])
    with pytest.raises(RewardError, match=r"reward 'odd'.*sample 2") as info:
        reward(["p"] * 3, ["c"] * 3)
    assert repr(bad) in str(info.value)
    assert (info.value.component, info.value.sample_index) == ("odd", 2)


def test_none_means_the_reward_does_not_apply_to_that_sample(tmp_path: Path) -> None:
    # user code in its worker process: only answers with a number are checked by it
    path = write(
        tmp_path,
        "maths.py",
        """
        def reward(prompt, completion):
            digits = "".join(ch for ch in completion if ch.isdigit())
            return None if not digits else float(digits == "4")
        """,
    )
    with build_reward(
        [cfg("python", name="maths", path=str(path)), cfg("length", weight=0.0, target=4)]
    ) as r:
        result = r(["2+2?"] * 3, ["4", "five", "3"])
    assert result.components["maths"] == [1.0, None, 0.0]
    assert result.total == [1.0, 0.0, 0.0]  # the length reward (weight 0) scored them all
    assert component_means("reward", result.components) == {
        "reward/maths": 0.5,  # the mean over the two samples it applied to
        "reward/length": pytest.approx(sum(result.components["length"]) / 3),
    }


def test_a_sample_no_reward_scores_is_an_error_naming_it() -> None:
    only_digits = RewardComponent(
        "digits", 1.0, lambda p, c, **k: [1.0 if x.isdigit() else None for x in c]
    )
    with pytest.raises(RewardError, match=r"no reward scored sample 1 .*'five'") as info:
        CompositeReward([only_digits])(["p", "p"], ["4", "five"])
    assert info.value.sample_index == 1


def test_composite_not_a_list() -> None:
    reward = CompositeReward([RewardComponent("s", 1.0, lambda p, c, **k: 1.0)])
    with pytest.raises(RewardError, match="reward 's' must return a list of numbers, got float"):
        reward(["p"], ["c"])


def test_composite_labels_user_errors_with_component(tmp_path: Path) -> None:
    path = write(tmp_path, "boom.py", "def reward(prompt, completion):\n    raise KeyError('k')\n")
    reward = build_reward([cfg("python", name="mine", path=str(path))])
    with pytest.raises(RewardError, match=r"reward 'mine': boom\.py line 2: KeyError") as info:
        reward(["p"], ["c"])
    assert (info.value.component, info.value.sample_index, info.value.lineno) == ("mine", 0, 2)


def test_composite_duplicate_names() -> None:
    with pytest.raises(RewardConfigError, match="duplicate reward name 'length'"):
        build_reward([cfg("length", target=5), cfg("length", target=9)])


def test_build_reward_defaults_and_relative_path(tmp_path: Path) -> None:
    write(
        tmp_path, "shout.py", "def reward(prompt, completion):\n    return completion.count('!')\n"
    )
    reward = build_reward(
        [
            cfg("python", weight=0.5, path="shout.py"),
            cfg("length", name="short", target=2),
            cfg("keywords", weight=2.0, keywords=["hi"]),
        ],
        base_dir=tmp_path,
    )
    result = reward(["p"], ["hi!!"])
    assert set(result.components) == {"shout", "short", "keywords"}
    assert result.components["shout"] == [2.0]
    assert result.total == [0.5 * 2.0 + -1.0 + 2.0 * 1.0]


def test_build_reward_config_errors() -> None:
    with pytest.raises(RewardConfigError, match=r"unknown reward kind 'vibes'.*python"):
        build_reward([cfg("vibes")])
    with pytest.raises(RewardConfigError, match=r"reward 'short': length.*'target'"):
        build_reward([cfg("length", name="short", target=0)])
    with pytest.raises(RewardConfigError, match=r"'weight' must be a finite number"):
        build_reward([cfg("sentiment", weight=math.nan)])
    with pytest.raises(RewardConfigError, match=r"python.*'path'"):
        build_reward([cfg("python")])
