"""model.compile: the update's forward runs through torch.compile with the eager numbers,
while sampling stays eager."""

from __future__ import annotations

import sys

import pytest
import torch
from torch._dynamo.utils import counters

from core.config import ConfigError
from core.events import Metrics
from core.lm.policy import load_models
from core.training.loop import train
from tests.core.helpers import tiny_config

# Rewards come from the eager sampling (the same samples); the rest from the update.
STEP_ONE = ("reward/mean", "loss/policy", "loss/q", "loss/v", "loss/value", "policy/grad_norm")


def _first_steps(overrides: dict) -> list[dict]:
    cfg = tiny_config({"training.steps": 2, "training.checkpoint_every": 0, **overrides})
    return [e.values for e in train(cfg) if isinstance(e, Metrics)]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"algorithm.name": "grpo", "algorithm.group_size": 4, "training.batch_size": 2},
        {"model.lora_r": 8},  # peft's wrapper compiled around the model
        {"algorithm.name": "ilql"},  # heads on the hidden states; its no-grad scoring eager
    ],
    ids=["ppo", "grpo", "ppo-lora", "ilql"],
)
def test_a_compiled_update_gives_the_eager_numbers(overrides) -> None:
    eager = _first_steps(overrides)
    torch.compiler.reset()  # graphs from earlier tests would serve this model too
    counters.clear()
    compiled = _first_steps({**overrides, "model.compile": True})
    # The update's forward went through one compiled graph for both steps, whose batches
    # differ in length: dynamic shapes, no recompilation per step.
    assert counters["stats"]["unique_graphs"] == 1
    # Step 1 samples with the same starting weights (sampling is eager): the same rewards.
    # Its update then sees the same batch; fused kernels round differently, nothing more.
    keys = [key for key in STEP_ONE if key in eager[0]]
    assert len(keys) >= 3, keys
    for key in keys:
        assert compiled[0][key] == pytest.approx(eager[0][key], rel=1e-3, abs=1e-5), key
    assert all(torch.isfinite(torch.tensor(list(m.values()))).all() for m in compiled)


def test_compiling_leaves_the_parameters_and_checkpoint_keys_alone() -> None:
    policy = load_models(tiny_config().model, value_head=True).policy
    keys, params = list(policy.state_dict()), list(policy.parameters())
    assert not policy.compiled
    policy.compile_update_forward()
    assert policy.compiled
    assert list(policy.state_dict()) == keys
    assert [id(p) for p in policy.parameters()] == [id(p) for p in params]


def test_a_machine_that_cannot_compile_is_told_before_the_model_loads(monkeypatch) -> None:
    cfg = tiny_config({"model.compile": True, "model.device": "cpu"}).model
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("core.lm.device.shutil.which", lambda _name: None)
    with pytest.raises(ConfigError, match="needs a C[+][+] compiler"):
        load_models(cfg, value_head=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(ConfigError, match="the packaged app cannot compile"):
        load_models(cfg, value_head=False)
