"""core.runner's commands beside training: `rlstudio rate` samples as the recipe says."""

from __future__ import annotations

import json

import pytest

import core.generation.rollout as rollout_module
from core.runner import rate_completions
from tests.core.helpers import tiny_config


@pytest.mark.parametrize(("sampler", "loop_calls"), [("loop", True), ("generate", False)])
def test_rate_samples_with_the_recipes_sampler(tmp_path, monkeypatch, sampler, loop_calls):
    """`generation.sampler = "generate"` reaches `rate` (it used to sample with our loop
    whatever the recipe said): our loop runs only when the recipe asks for it."""
    calls = []
    real_sample = rollout_module.sample

    def counted(*args, **kwargs):
        calls.append(1)
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(rollout_module, "sample", counted)
    out = tmp_path / "rated.jsonl"
    cfg = tiny_config({"generation.sampler": sampler})
    assert rate_completions(cfg, out, per_prompt=2) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and all(isinstance(r["reward"], float) for r in rows)
    assert bool(calls) is loop_calls
