"""Offline ILQL from a rated data set, ILQL export, and held-out evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.checkpoint import export_model
from core.cli import main
from core.events import Checkpoint, Metrics
from core.models import load_models
from core.rewards import build_reward
from core.rollout import generate_rollout
from core.runner import rate_completions
from core.store import Store
from core.train import train
from tests.core.helpers import tiny_config


def test_offline_ilql_learns_from_a_rated_file_and_exports_its_heads(tmp_path):
    data = tmp_path / "rated.jsonl"
    assert rate_completions(tiny_config({"training.seed": 1}), data, per_prompt=32) == 32
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert {"prompt", "completion", "reward", "components"} <= set(rows[0])
    cfg = tiny_config(
        {
            "algorithm.name": "ilql",
            "ilql.mode": "offline",
            "ilql.dataset": str(data),
            "training.steps": 20,
            "training.checkpoint_every": 20,
        }
    )
    events = list(train(cfg, checkpoint_dir=tmp_path / "ck"))
    losses = [e.values["loss/total"] for e in events if isinstance(e, Metrics)]
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # the heads and the LM fit the data
    ckpt = [e for e in events if isinstance(e, Checkpoint)][-1]
    out = export_model(ckpt.path, tmp_path / "export", "tiny-random", ilql_beta=cfg.ilql.beta)
    assert (out / "ilql_heads.safetensors").is_file()
    assert "ilql_decode_logits" in (out / "ILQL_README.md").read_text()
    from safetensors.torch import load_file

    from core.algorithms.ilql import ILQLHeads

    heads = ILQLHeads(64, 49152)
    heads.load_state_dict(load_file(out / "ilql_heads.safetensors"))  # loads as the note says
    models = load_models(cfg.model, value_head=False, seed=0, ilql=cfg.ilql)
    torch.manual_seed(0)
    rollout = generate_rollout(
        models, ["Once upon a time"] * 4, cfg.generation, 64, ilql=cfg.ilql, explore=False
    )
    assert len(rollout.completions) == 4
    assert build_reward(cfg.reward.components, base_dir=cfg.base_dir)(
        ["Once upon a time"] * 4, rollout.completions
    ).total


def test_offline_ilql_without_a_data_set_is_a_clear_error():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="offline ILQL needs a rated .jsonl"):
        tiny_config({"algorithm.name": "ilql", "ilql.mode": "offline"})


def test_evaluation_before_and_after_on_held_out_prompts(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    recipe = tmp_path / "questions.toml"
    recipe.write_text(
        '[model]\nname = "tiny-random"\n[data]\nprompts = "questions"\nheldout_fraction = 0.1\n'
        "[generation]\nmax_new_tokens = 6\n"
        '[[reward.components]]\nkind = "length"\nparams = { target = 20 }\n'
        "[training]\nsteps = 2\nbatch_size = 4\nlearning_rate = 3e-4\n"
    )
    assert main(["--db", db, "train", str(recipe)]) == 0
    with Store(db) as store:
        metrics = store.metrics(1)
    for key in (
        "eval/reward/mean",
        "eval/perplexity",
        "eval/distinct_1",
        "eval/bleu",
        "eval/rouge_l",
        "eval/chrf",
        "eval/kl",
        "eval/reward/length",
    ):
        assert metrics[key].steps.tolist() == [0, 2], key
    assert metrics["eval/kl"].values[0] == pytest.approx(0.0, abs=1e-4)  # untrained = reference
    capsys.readouterr()
    assert main(["--db", db, "eval", "1", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["before"]["eval/perplexity"] > 1
    assert set(table["before"]) == set(table["after"])
