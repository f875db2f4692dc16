"""Offline ILQL from a rated data set (made by `rlstudio rate`), and its export."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from core.algorithms.ilql import ILQL
from core.algorithms.ilql.offline import rated_transitions
from core.events import Checkpoint, Metrics
from core.generation.rollout import generate_rollout
from core.lm.policy import load_models
from core.rewards import build_reward
from core.runner import rate_completions
from core.training.checkpoint import export_model, load_checkpoint
from core.training.loop import train
from tests.core.helpers import tiny_config


def test_offline_ilql_decodes_better_than_its_data_and_exports_its_heads(tmp_path):
    # The behaviour policy is tiny-random itself: 64 of its completions (one batch), rated by
    # the recipe's reward (share of the letter e). Offline ILQL never samples while training;
    # afterwards logits + beta * (Q - V) must write completions that score higher than the
    # data did, by more than the noise of either mean.
    data = tmp_path / "rated.jsonl"
    rater = tiny_config({"training.seed": 1, "training.batch_size": 64})
    assert rate_completions(rater, data, per_prompt=64) == 64
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert {"prompt", "completion", "reward", "components"} <= set(rows[0])
    data_rewards = np.array([row["reward"] for row in rows])
    cfg = tiny_config(
        {
            "algorithm.name": "ilql",
            "ilql.mode": "offline",
            "ilql.dataset": str(data),
            "training.seed": 1,
            "training.steps": 30,
            "training.checkpoint_every": 30,
        }
    )
    events = list(train(cfg, checkpoint_dir=tmp_path / "ck"))
    losses = [e.values["loss/total"] for e in events if isinstance(e, Metrics)]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # the heads and the LM fit the data
    ckpt = [e for e in events if isinstance(e, Checkpoint)][-1]

    models = load_models(cfg.model, value_head=False, seed=0, heads=ILQL.heads_factory(cfg))
    load_checkpoint(ckpt.path, models.policy)
    prompts = ["Once upon a time"] * 128
    torch.manual_seed(0)
    decode = ILQL.decoder(cfg, explore=False)
    rollout = generate_rollout(models, prompts, cfg.generation, 64, decode=decode)
    with build_reward(cfg.reward.components, base_dir=cfg.base_dir) as reward:
        decoded = np.array(reward(prompts, rollout.completions).total)
    gain = decoded.mean() - data_rewards.mean()
    noise = np.sqrt(decoded.var() / len(decoded) + data_rewards.var() / len(data_rewards))
    assert gain > 3 * noise, (decoded.mean(), data_rewards.mean(), noise)

    extras = functools.partial(ILQL.export_extras, cfg)
    out = export_model(ckpt.path, tmp_path / "export", "tiny-random", extras=extras)
    assert (out / "ilql_heads.safetensors").is_file()
    assert "ilql_decode_logits" in (out / "ILQL_README.md").read_text()
    from safetensors.torch import load_file

    from core.algorithms.ilql import ILQLHeads

    heads = ILQLHeads(64, 49152)
    heads.load_state_dict(load_file(out / "ilql_heads.safetensors"))  # loads as the note says
    trained = models.policy.heads.state_dict()
    assert all(torch.equal(x, trained[name]) for name, x in heads.state_dict().items())


def test_rated_completions_end_with_eos_only_when_they_stopped_before_the_limit(tmp_path):
    # A completion shorter than max_new_tokens ended (EOS, as generation would have it); one
    # that reached the limit was cut there: no EOS the behaviour policy never chose.
    data = tmp_path / "rated.jsonl"
    rows = [("Once", " a", 1.0), ("Once", " one two three four five six seven eight nine", 0.0)]
    data.write_text(
        "".join(json.dumps(dict(zip(("prompt", "completion", "reward"), r))) + "\n" for r in rows)
    )
    cfg = tiny_config({"algorithm.name": "ilql", "ilql.mode": "offline", "ilql.dataset": str(data)})
    models = load_models(cfg.model, value_head=False, seed=0)
    tok, limit = models.tokenizer, cfg.generation.max_new_tokens
    short, long = rated_transitions(cfg, models.tokenizer)
    assert list(short.response_ids) == tok(" a", add_special_tokens=False)["input_ids"] + [
        tok.eos_token_id
    ]
    cut = tok(rows[1][1], add_special_tokens=False)["input_ids"][:limit]
    assert len(cut) == limit and list(long.response_ids) == cut
    assert (short.reward, long.reward) == (1.0, -1.0)  # standardised over the data set


def test_offline_ilql_without_a_data_set_is_a_clear_error():
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="offline ILQL needs a rated .jsonl"):
        tiny_config({"algorithm.name": "ilql", "ilql.mode": "offline"})
