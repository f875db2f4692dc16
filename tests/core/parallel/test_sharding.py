"""FSDP settings as accelerate exports them, and the runs FSDP refuses (one process)."""

from __future__ import annotations

import pytest

from core.config import ConfigError
from core.parallel import sharding
from core.training.loop import train
from tests.core.helpers import tiny_config


def test_accelerate_fsdp_settings_are_read(monkeypatch) -> None:
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("FSDP_RESHARD_AFTER_FORWARD", "false")
    monkeypatch.setenv("FSDP_OFFLOAD_PARAMS", "true")
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "LlamaDecoderLayer, MLP")
    assert sharding.requested()
    opts = sharding.options_from_env()
    assert opts == sharding.Options(False, True, ("LlamaDecoderLayer", "MLP"))
    # FSDP 1 configs name the strategy instead.
    monkeypatch.delenv("FSDP_RESHARD_AFTER_FORWARD")
    monkeypatch.setenv("FSDP_SHARDING_STRATEGY", "FULL_SHARD")
    assert sharding.options_from_env().reshard_after_forward
    monkeypatch.setenv("FSDP_SHARDING_STRATEGY", "NO_SHARD")
    with pytest.raises(ValueError, match="NO_SHARD is plain data parallel"):
        sharding.options_from_env()


def test_fsdp_is_not_asked_for_by_a_single_process(monkeypatch) -> None:
    monkeypatch.setenv("RLSTUDIO_FSDP", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not sharding.requested()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"algorithm.name": "ilql"}, "ILQL runs data parallel"),
        ({"training.batch_size": 5}, "must split evenly over 2 processes"),
        ({"model.compile": True}, "model.compile is not available with FSDP"),
    ],
)
def test_fsdp_refuses_what_would_hang_the_processes(monkeypatch, overrides, message) -> None:
    monkeypatch.setenv("RLSTUDIO_FSDP", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("core.parallel.distributed.world_size", lambda: 2)
    with pytest.raises(ConfigError, match=message):
        next(iter(train(tiny_config(overrides))))
