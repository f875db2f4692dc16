"""The trainer state on disk: tensors plus JSON, read back exactly, with no pickle."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from core.training.checkpoint import STATE_JSON, STATE_TENSORS, StateUnreadable, read_trainer_state
from core.training.checkpoint.state import write_trainer_state


def test_what_a_run_saves_comes_back_with_its_types(tmp_path):
    weight = torch.randn(3, 4)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(weight.clone())], lr=1e-3)
    optimizer.param_groups[0]["params"][0].grad = torch.ones(3, 4)
    optimizer.step()
    state = {
        "optimizer": optimizer.state_dict(),  # int keys, tensors, tuple betas
        "rng": {"python": random.getstate(), "numpy": np.random.get_state()},
        "view": weight[0],  # shares storage with the next one: stored as a copy
        "whole": weight,
        "raw": b"\x00\xffbytes",
        "odd": {"$looks_tagged": 1, 2: float("inf")},
        "nan": float("nan"),
        "buffer": [((1, 2), (3,), 0.5)],
    }
    write_trainer_state(state, tmp_path)
    back = read_trainer_state(tmp_path)

    restored = torch.optim.AdamW([torch.nn.Parameter(weight.clone())], lr=1e-3)
    restored.load_state_dict(back["optimizer"])
    moments = back["optimizer"]["state"][0]
    assert torch.equal(moments["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    random.setstate(back["rng"]["python"])  # raises unless the nested tuples came back
    np.random.set_state(back["rng"]["numpy"])
    assert back["rng"]["numpy"][1].dtype == np.uint32
    assert torch.equal(back["view"], weight[0]) and torch.equal(back["whole"], weight)
    assert back["raw"] == b"\x00\xffbytes"
    assert back["odd"] == {"$looks_tagged": 1, 2: math.inf}
    assert math.isnan(back["nan"]) and back["buffer"] == [((1, 2), (3,), 0.5)]


def test_an_object_that_is_not_plain_data_is_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match="cannot hold set"):
        write_trainer_state({"steps": {1, 2}}, tmp_path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / STATE_JSON).write_text("{not json"), "trainer_state.json cannot be read"),
        (
            lambda d: (d / STATE_TENSORS).write_bytes(b""),
            "trainer_state.safetensors cannot be read",
        ),
        (lambda d: (d / STATE_TENSORS).unlink(), "trainer_state.safetensors is missing"),
        (lambda d: (d / STATE_JSON).write_text('{"a": {"$code": "x"}}'), "unknown tag \\$code"),
    ],
)
def test_a_damaged_state_is_named(tmp_path, damage, message):
    write_trainer_state({"a": torch.zeros(2)}, tmp_path)
    damage(tmp_path)
    with pytest.raises(StateUnreadable, match=message):
        read_trainer_state(tmp_path)
