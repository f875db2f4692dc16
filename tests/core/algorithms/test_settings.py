"""The algorithm settings a recipe names: TRL's names and meanings, old names mapped with a
warning, and a clear refusal where a setting would do nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, RenamedSetting, load_config
from core.training.loop import train
from tests.core.helpers import tiny_config

PROMPTS = Path(__file__).parents[3] / "assets" / "recipes" / "tiny_smoke_prompt.txt"


def _recipe(tmp_path, algorithm: str):
    text = (
        f'[model]\nname = "tiny-random"\n[data]\nprompts = "{PROMPTS}"\n'
        '[[reward.components]]\nkind = "length"\nparams = { target = 5 }\n'
        f"[algorithm]\n{algorithm}\n"
    )
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "old, new",
    [
        ('name = "grpo"\ngroup_size = 2\nloss_normalization = "token"', {"loss_type": "bnpo"}),
        ('name = "grpo"\ngroup_size = 2\nloss_normalization = "sequence"', {"loss_type": "grpo"}),
        ('name = "grpo"\ngroup_size = 2\nscale_by_std = false', {"scale_rewards": "none"}),
        ("scale_rewards = true", {"running_std_scaling": True, "scale_rewards": "group"}),
    ],
)
def test_old_names_load_with_a_warning_and_their_old_meaning(tmp_path, old, new):
    with pytest.warns(RenamedSetting, match="is now"):
        cfg = load_config(_recipe(tmp_path, old))
    for name, value in new.items():
        assert getattr(cfg.algorithm, name) == value


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            'name = "reinforce"\nepsilon_high = 0.28',
            "epsilon_high = 0.28 does not apply to reinforce",
        ),
        ('name = "ppo"\nloss_type = "dapo"', "loss_type = 'dapo' does not apply to ppo"),
        ('name = "ppo"\nkl_in = "loss"', 'kl_in = "loss": only rloo and grpo'),
        ('name = "grpo"\ngroup_size = 2\nkl_estimator = "k1"', "gradient of k1 is zero"),
        ('name = "rloo"\ngroup_size = 2\nscale_rewards = "batch"', "applies to grpo only"),
        ('name = "ilql"\nentropy_coef = 0.01', "entropy_coef = 0.01 does not apply to ilql"),
        (
            'name = "grpo"\ngroup_size = 2\nbootstrap_truncated = true',
            "bootstrap_truncated = True does not apply to grpo",
        ),
    ],
)
def test_a_setting_that_would_do_nothing_is_refused(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_recipe(tmp_path, settings))


def test_the_adaptive_kl_coefficient_moves_within_a_run():
    """With the default horizon the coefficient visibly follows the KL in a few steps
    (tiny_smoke: 8 completions a step, KL far below its target of 6, so it falls by
    0.2 x 8 / 500 = 0.32% a step; the old horizon of 10000 moved it 0.016%)."""
    metrics = [
        e for e in train(tiny_config({"training.steps": 4})) if type(e).__name__ == "Metrics"
    ]
    coefs = [m.values["objective/kl_coef"] for m in metrics]
    assert coefs[0] == pytest.approx(0.01)
    assert coefs[-1] == pytest.approx(0.01 * (1 - 0.2 * 8 / 500) ** 3, rel=1e-6)


def test_the_cli_says_a_renamed_setting_in_one_line(tmp_path, capsys):
    from core.cli.main import main

    recipe = _recipe(tmp_path, 'name = "grpo"\ngroup_size = 2\nloss_normalization = "token"')
    text = recipe.read_text().replace(
        "[algorithm]", "[training]\nsteps = 1\nbatch_size = 1\n[algorithm]"
    )
    recipe.write_text(text)
    assert main(["--db", f"sqlite:///{tmp_path / 'runs.db'}", "train", str(recipe)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "loss_normalization" in line]
    new = 'algorithm.loss_type = "bnpo"'
    assert notes == [f'note: algorithm.loss_normalization = "token" is now {new} (TRL\'s name)']
