"""Configs a TRL user brings, through `rlstudio` as they run it: a recipe in YAML, and
`rlstudio import-trl` on a GRPOConfig dumped to YAML (TRL's own names and defaults),
whose recipe then trains."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from core.cli.main import main
from core.config import load_config
from core.store import RunStatus, Store


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_a_yaml_recipe_trains_with_the_same_fields_as_toml(db, tmp_path):
    (tmp_path / "p.txt").write_text("Once upon a time\n")
    (tmp_path / "r.py").write_text(
        "def reward(completions, **kw):\n    return [c.count('e') for c in completions]\n"
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        textwrap.dedent("""
        model: {name: tiny-random}
        data: {prompts: p.txt, heldout_fraction: 0.0}
        generation: {max_new_tokens: 4}
        algorithm: {name: rloo, group_size: 2, minibatches: 1}
        reward:
          components:
            - kind: python
              params: {path: r.py}
        training:
          steps: 2
          batch_size: 2
          learning_rate: 3e-4   # YAML 1.1 reads this as text; recipes read it as a number
          checkpoint_every: 0
        """)
    )
    assert main(["--db", db, "train", str(recipe)]) == 0
    with Store(db) as store:
        (run,) = store.runs()
        assert run.status == RunStatus.COMPLETED
        config = store.run_config(run.id)
    assert config["training"]["learning_rate"] == 3e-4 and config["algorithm"]["name"] == "rloo"


def test_a_bad_yaml_recipe_is_one_line(db, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  steps: [1, 2\n")
    assert main(["--db", db, "train", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.yaml: not valid YAML (line 3)" in err, err
    typo = tmp_path / "typo.yaml"
    typo.write_text("training:\n  stepz: 3\n")
    assert main(["--db", db, "train", str(typo)]) == 2
    assert "unknown setting 'stepz' in [training]" in capsys.readouterr().err


# A GRPOConfig as `GRPOConfig(...).to_dict()` gives it (a selection: TRL's names, values
# a user sets, and TrainingArguments' plumbing), dumped with yaml.safe_dump.
GRPO_CONFIG = {
    "output_dir": "Qwen2-0.5B-GRPO",
    "overwrite_output_dir": False,
    "do_train": False,
    "eval_strategy": "no",
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 8,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1e-06,
    "weight_decay": 0.0,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "max_grad_norm": 1.0,
    "num_train_epochs": 3.0,
    "max_steps": 40,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "warmup_steps": 0,
    "logging_steps": 10,
    "save_strategy": "steps",
    "save_steps": 20,
    "save_total_limit": 3,
    "seed": 42,
    "bf16": True,
    "report_to": [],
    "gradient_checkpointing": True,
    "remove_unused_columns": False,
    "num_generations": 4,
    "max_completion_length": 64,
    "max_prompt_length": 128,
    "temperature": 0.9,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": None,
    "repetition_penalty": 1.0,
    "use_vllm": False,
    "vllm_mode": "server",
    "beta": 0.04,
    "num_iterations": 2,
    "epsilon": 0.2,
    "epsilon_high": 0.28,
    "delta": None,
    "importance_sampling_level": "token",
    "reward_weights": None,
    "scale_rewards": "group",
    "loss_type": "dr_grpo",
    "mask_truncated_completions": False,
    "steps_per_generation": None,
    "generation_batch_size": None,
    "log_completions": False,
}


def test_import_trl_maps_what_means_the_same_and_says_what_it_could_not(db, tmp_path, capsys):
    trl_yaml = tmp_path / "grpo_config.yaml"
    trl_yaml.write_text(yaml.safe_dump(GRPO_CONFIG))
    (tmp_path / "p.txt").write_text("The weather today\nMy favourite food\n")
    (tmp_path / "rewards.py").write_text(
        "def reward_len(completions, **kwargs):\n"
        "    return [-abs(20 - len(c)) for c in completions]\n"
    )
    out = tmp_path / "recipes" / "imported.toml"
    argv = ["import-trl", str(trl_yaml), "--out", str(out), "--prompts", str(tmp_path / "p.txt")]
    assert main([*argv, "--reward", f"{tmp_path / 'rewards.py'}:reward_len"]) == 0
    said = capsys.readouterr().out
    assert "beta = 0.04 -> algorithm.kl_coef = 0.04" in said
    assert "scale_rewards = 'group' -> algorithm.scale_rewards = 'group'" in said
    assert "loss_type = 'dr_grpo' -> algorithm.loss_type = 'dr_grpo'" in said
    assert "epsilon_high = 0.28 -> algorithm.epsilon_high = 0.28" in said
    assert "delta" not in said.split("ignored")[0]  # None: TRL's "off", ignored
    assert "output_dir" in said.split("ignored")[1]
    cfg = load_config(out)
    a, t, g = cfg.algorithm, cfg.training, cfg.generation
    assert (a.name, a.group_size, a.kl_coef, a.adaptive_kl) == ("grpo", 4, 0.04, False)
    assert (a.clip_range, a.epochs, a.minibatches, a.scale_rewards) == (0.2, 2, 1, "group")
    assert (a.loss_type, a.epsilon_high, a.importance_sampling_level) == ("dr_grpo", 0.28, "token")
    assert a.running_std_scaling is False  # TRL's scale_rewards never means a running std
    # 4 x 2 completions per generation, in groups of 4: 2 prompts a step; 40 optimiser
    # steps at 2 a step (num_iterations) are 20 steps
    assert (t.batch_size, t.steps, t.checkpoint_every, t.keep_checkpoints) == (2, 20, 10, 3)
    assert (t.learning_rate, t.lr_schedule, t.warmup_steps, t.seed) == (1e-6, "cosine", 2, 42)
    assert (g.max_new_tokens, g.temperature, cfg.data.max_prompt_tokens) == (64, 0.9, 128)
    assert cfg.model.gradient_checkpointing is True
    assert cfg.reward.components[0].params["function"] == "reward_len"
    # ...and the recipe trains (on the tiny model, two steps)
    train = ["--db", db, "train", str(out), "--model", "tiny-random", "--steps", "2"]
    assert main([*train, "--set", "generation.max_new_tokens=4"]) == 0
    with Store(db) as store:
        (run,) = store.runs()
        assert run.status == RunStatus.COMPLETED and run.last_step == 2


def test_import_trl_rloo_and_bad_input(tmp_path, capsys):
    trl_yaml = tmp_path / "rloo.yaml"
    trl_yaml.write_text("learning_rate: 3e-6\nnum_generations: 4\nper_device_train_batch_size: 8\n")
    out = tmp_path / "rloo.yaml.out.yaml"
    assert main(["import-trl", str(trl_yaml), "--trainer", "rloo", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "algorithm.kl_in = reward" in said and "next: name your reward" in said
    cfg = load_config(out)
    assert (cfg.algorithm.name, cfg.algorithm.kl_coef, cfg.algorithm.kl_in) == (
        "rloo",
        0.05,
        "reward",
    )
    assert (cfg.training.batch_size, cfg.training.learning_rate) == (2, 3e-6)
    odd = tmp_path / "odd.yaml"
    odd.write_text("num_generations: 3\nper_device_train_batch_size: 8\n")
    assert main(["import-trl", str(odd), "--out", str(tmp_path / "x.toml")]) == 0
    assert "8 completions per generation are not whole groups of 3" in capsys.readouterr().out
    broken = tmp_path / "broken.yaml"
    broken.write_text("- just\n- a list\n")
    assert main(["import-trl", str(broken), "--out", str(tmp_path / "y.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a recipe is a mapping of settings, got list" in err
    assert not (tmp_path / "y.toml").exists()
