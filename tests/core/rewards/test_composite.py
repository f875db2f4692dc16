"""The weighted composite (core.rewards.composite): weights and components, bad values named
by component and sample, None for "does not apply", and build_reward from recipe components."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.rewards import (
    CompositeReward,
    RewardComponent,
    RewardConfigError,
    RewardError,
    RewardResult,
    build_reward,
)
from core.rewards.scores import component_means


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def cfg(kind: str, name: str = "", weight: float = 1.0, **params) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, name=name, weight=weight, params=params)


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


@pytest.mark.parametrize(
    ("weights", "scores", "named", "total"),
    [
        ((10.0,), (1e308,), "first", "inf"),  # the product overflows
        ((1.0, 1.0), (1e308, 1e308), "second", "inf"),  # the sum does
        ((1.0,), (1e39,), "first", "1e+39"),  # finite, but inf as a 32-bit float
        ((1.0, 2.0), (3e38, 3e38), "second", "9e+38"),  # its largest part is named
        ((1.0, -1.0), (1e308, 1e308), None, None),  # large parts, a usable total
    ],
)
def test_a_total_training_cannot_hold_names_the_component(weights, scores, named, total) -> None:
    names = ("first", "second")
    reward = CompositeReward(
        [RewardComponent(n, w, constant(s)) for n, w, s in zip(names, weights, scores)]
    )
    if named is None:
        assert reward(["p"], ["c"]).total == [0.0]
        return
    with pytest.raises(
        RewardError, match=re.escape(f"makes the total reward {total}, past")
    ) as info:
        reward(["p", "p"], ["c", "c"])
    assert str(info.value).startswith(f"reward '{named}': weight")
    assert (info.value.component, info.value.sample_index) == (named, 0)


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
