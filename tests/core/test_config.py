from __future__ import annotations

import dataclasses

import pytest

from core.config import (
    ConfigError,
    RunConfig,
    field_info,
    load_config,
    parse_override,
    save_config,
    validate,
    with_overrides,
)
from core.paths import assets_dir


def test_every_shipped_recipe_loads_and_validates():
    recipes = sorted((assets_dir() / "recipes").glob("*.toml"))
    assert {"sentiment_ppo", "length_reinforce"} <= {p.stem for p in recipes}
    for path in recipes:
        cfg = load_config(path)
        assert cfg.training.steps >= 1
        assert cfg.base_dir == str(path.parent.resolve())


def test_defaults_are_valid_and_frozen():
    cfg = validate(RunConfig())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.steps = 5  # type: ignore[misc]


def test_toml_round_trip(tmp_path):
    cfg = with_overrides(
        RunConfig(),
        {"training.steps": 7, "generation.stop": ["\n\n"], "algorithm.name": "reinforce"},
    )
    path = tmp_path / "r.toml"
    save_config(cfg, path)
    again = load_config(path)
    assert dataclasses.replace(again, base_dir="") == dataclasses.replace(cfg, base_dir="")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[training]\nlearning_rate = 5.0\n", "training.learning_rate = 5.0: must be at most 1.0"),
        ("[training]\nsteps = 0\n", "training.steps = 0: must be at least 1"),
        ("[training]\nlearning_rate = 0\n", "training.learning_rate = 0.0: must be above 0.0"),
        (
            "[training]\nmax_skipped_updates = -1\n",
            "training.max_skipped_updates = -1: must be at least 0",
        ),
        (
            '[algorithm]\nname = "dqn"\n',
            "algorithm.name = 'dqn': must be one of ppo, a2c, reinforce, rloo, grpo, ilql",
        ),
        ('[training]\nsteps = "ten"\n', "training.steps = 'ten': expected a whole number"),
        ("[training]\nstepz = 3\n", "unknown setting 'stepz' in [training]; known: steps"),
        ('[algorithm]\nkl_estimator = "k9"\n', "must be one of auto, k1, k2, k3"),
        ('[algorithm]\nname = "grpo"\n', "algorithm.group_size = 1: grpo compares completions"),
        ('[algorithm]\nname = "ilql"\n[ilql]\nmode = "offline"\n', "ilql.dataset: offline ILQL"),
        (
            "[training]\nbatch_size = 2\n[algorithm]\nminibatches = 4\n",
            "algorithm.minibatches = 4: must be at most the completions per step",
        ),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_allowed(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_bad_toml_and_missing_file_are_clear(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[training\nsteps = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML.*line 1"):
        load_config(path)
    with pytest.raises(ConfigError, match="recipe not found"):
        load_config(tmp_path / "nope.toml")


def test_overrides_parse_toml_values_and_reject_unknown_keys():
    assert parse_override("training.steps=50") == ("training.steps", 50)
    assert parse_override("model.name=tiny-random") == ("model.name", "tiny-random")
    assert parse_override('generation.stop=["\\n"]') == ("generation.stop", ["\n"])
    cfg = with_overrides(RunConfig(), {"training.learning_rate": 3e-5})
    assert cfg.training.learning_rate == 3e-5
    with pytest.raises(ConfigError, match="unknown setting 'training.nope'"):
        with_overrides(RunConfig(), {"training.nope": 1})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("training.steps")


def test_field_metadata_drives_forms():
    info = {name: meta for name, _hint, meta in field_info(RunConfig().training.__class__)}
    assert info["learning_rate"]["help"]
    assert info["learning_rate"]["max"] == 1.0
    algo = {name: meta for name, _hint, meta in field_info(RunConfig().algorithm.__class__)}
    assert algo["name"]["choices"] == ("ppo", "a2c", "reinforce", "rloo", "grpo", "ilql")
