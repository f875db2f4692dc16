"""The training loop on tiny-random: it learns, it obeys pause/stop, it repeats and resumes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.control import Control
from core.events import Checkpoint, Log, Metrics, Samples, Status
from core.training.checkpoint import checkpoint_problem
from core.training.loop import train
from tests.core.helpers import tiny_config

REQUIRED_KEYS = {
    "reward/mean",
    "reward/std",
    "reward/letter_e",
    "objective/kl",
    "objective/kl_coef",
    "objective/entropy",
    "loss/policy",
    "response/length_mean",
    "time/rollout_s",
    "time/update_s",
    "perf/tokens_per_s",
    "memory/peak_mb",
}


def _metrics(events):
    return [e for e in events if isinstance(e, Metrics)]


GROUPED = {"algorithm.group_size": 4, "training.batch_size": 2}
LEARNING = {
    # The controller's horizon as this test was tuned with (it moves the coefficient 20x
    # faster by default now): at 500 this seed's reward rose 0.102 -> 0.110 only.
    "ppo": {"algorithm.kl_horizon": 10000},
    # One on-policy step a batch learns slowest: at 1e-3 with two steps a batch (before
    # A2C took one) it rose by +0.030 to +0.095 over seeds 0-3; with one step at 2e-3 and
    # the entropy bonus 0.01, +0.015 at seed 0; at 3e-3 without it +0.050, +0.069 and
    # -0.002 (seeds 0-2): the test's seed 0 clears the bar, not every seed does.
    "a2c": {"training.learning_rate": 3e-3},
    # at the recipe's 3e-4, +0.003, +0.082 and +0.032 over seeds 0-2; at 1e-3 +0.054 to +0.065
    "reinforce": {"training.learning_rate": 1e-3},
    "rloo": {**GROUPED, "training.learning_rate": 1e-3},
    "grpo": GROUPED,
    "ilql": {},
}
RESUMABLE = LEARNING
KEYS_BY_ALGORITHM = {
    "ppo": {"loss/value", "policy/clipfrac", "policy/approx_kl", "value/explained_variance"},
    "a2c": {"loss/value", "value/explained_variance"},
    "grpo": {"policy/clipfrac", "policy/approx_kl", "objective/frac_reward_zero_std"},
    "ilql": {"loss/q", "loss/v", "loss/cql", "loss/awac", "q/mean", "v/mean"},
}


@pytest.mark.parametrize("algorithm", list(LEARNING))
def test_reward_rises_on_a_learnable_task(algorithm):
    """The share of the letter "e" after a fixed prompt: the first 5 steps vs the last 5."""
    cfg = tiny_config(
        {
            "algorithm.name": algorithm,
            "training.steps": 40,
            "training.checkpoint_every": 0,
            **LEARNING[algorithm],
        }
    )
    metrics = _metrics(list(train(cfg)))
    rewards = np.array([m.values["reward/mean"] for m in metrics])
    assert len(rewards) == 40
    first, last = rewards[:5].mean(), rewards[-5:].mean()
    assert last > first + 0.02, f"{algorithm}: reward went {first:.3f} -> {last:.3f}"
    keys = set(metrics[-1].values)
    assert keys >= REQUIRED_KEYS
    assert keys >= KEYS_BY_ALGORITHM.get(algorithm, set())


def test_same_seed_same_run_on_cpu():
    cfg = tiny_config({"training.steps": 3, "training.checkpoint_every": 0})
    a = [m.values["reward/mean"] for m in _metrics(train(cfg))]
    b = [m.values["reward/mean"] for m in _metrics(train(cfg))]
    assert a == b
    other = tiny_config({"training.steps": 3, "training.seed": 1, "training.checkpoint_every": 0})
    assert [m.values["reward/mean"] for m in _metrics(train(other))] != a


def test_samples_carry_per_token_detail():
    cfg = tiny_config({"training.steps": 1, "logging.samples_per_step": 3})
    samples = next(e for e in train(cfg) if isinstance(e, Samples))
    assert len(samples.rows) == 3
    row = samples.rows[0]
    assert row.prompt == "Once upon a time"
    assert len(row.tokens) == len(row.logprobs) == len(row.kl) == len(row.advantages) > 0
    assert "".join(row.tokens).strip() == row.completion.strip()
    assert row.components["letter_e"] == pytest.approx(row.reward)


@pytest.mark.parametrize("algorithm", list(RESUMABLE))
def test_resume_gives_the_same_next_steps_as_an_uninterrupted_run(tmp_path, algorithm):
    extra = {"algorithm.name": algorithm, **RESUMABLE[algorithm]}
    cfg = tiny_config({**extra, "training.steps": 4, "training.checkpoint_every": 2})
    straight = _metrics(train(cfg, checkpoint_dir=tmp_path / "a"))
    half = tiny_config({**extra, "training.steps": 2, "training.checkpoint_every": 2})
    first_half = list(train(half, checkpoint_dir=tmp_path / "b"))
    ckpt = [e for e in first_half if isinstance(e, Checkpoint)][-1]
    assert ckpt.step == 2
    resumed = _metrics(train(cfg, checkpoint_dir=tmp_path / "b", resume_from=ckpt.path))
    assert [m.step for m in resumed] == [3, 4]
    for a, b in zip(straight[2:], resumed):
        keys = {"reward/mean", "objective/kl", "loss/policy", "loss/value", "loss/q", "loss/v"}
        for key in keys & set(a.values):
            assert a.values[key] == pytest.approx(b.values[key], rel=1e-5, abs=1e-7), key


def test_pause_then_resume_then_stop_saves_a_checkpoint(tmp_path):
    control = Control()
    cfg = tiny_config({"training.steps": 50, "training.checkpoint_every": 0})
    states, steps = [], []
    for event in train(cfg, control, checkpoint_dir=tmp_path):
        if isinstance(event, Status):
            states.append(event.state)
            if event.state == "paused":
                threading.Timer(0.2, control.resume).start()
        if isinstance(event, Metrics):
            steps.append(event.step)
            if event.step == 2:
                control.pause()
            if event.step == 4:
                control.stop()
        if isinstance(event, Checkpoint):
            saved = event
    assert states == ["loading", "running", "paused", "running", "stopped"]
    assert steps == [1, 2, 3, 4]
    assert saved.step == 4  # a stop keeps the last finished step, ready to resume


def test_stop_in_the_middle_of_generation_is_prompt(tmp_path):
    control = Control()
    cfg = tiny_config(
        {"training.steps": 5, "generation.max_new_tokens": 4000, "data.max_prompt_tokens": 64}
    )
    threading.Timer(1.0, control.stop).start()
    events = list(train(cfg, control, checkpoint_dir=tmp_path))
    assert events[-1] == Status("stopped", "Stopped by the user", 0, 5)
    assert not _metrics(events)  # the half-generated step is dropped, not half-recorded


def test_a_stop_while_the_model_loads_ends_the_run_before_any_step(tmp_path):
    from core.control import Stopped
    from core.lm.sources import TINY_RANDOM, load_lm

    model, tokenizer, _ = load_lm(TINY_RANDOM)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    control = Control()
    said = []

    def progress(text):  # the studio's progress callback raises once Stop was pressed
        said.append(text)
        control.stop()
        raise Stopped

    cfg = tiny_config({"model.name": str(tmp_path / "model")})
    events = list(train(cfg, control, progress=progress))
    assert said and events[-1] == Status(
        "stopped", "Stopped while loading the model", 0, cfg.training.steps
    )
    assert not _metrics(events)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_one_pass_takes_old_logprobs_from_its_update_with_the_same_result(monkeypatch, algorithm):
    """One gradient pass: the rollout skips its policy forward; metrics stay the same
    (RLOO: with the KL in the reward, which needs every row's logprobs first)."""
    from core.algorithms import ALGORITHMS

    settings = {
        "algorithm.name": algorithm,
        "algorithm.kl_in": "reward",
        "algorithm.group_size": 4,
        "algorithm.epochs": 1,
        "algorithm.minibatches": 1,
        "training.batch_size": 2,
        "training.steps": 2,
    }
    import core.training.steps

    asked = []

    def rollout(*args, **kwargs):
        asked.append(kwargs["score_policy"])
        return real_rollout(*args, **kwargs)

    real_rollout = core.training.steps.generate_rollout
    monkeypatch.setattr(core.training.steps, "generate_rollout", rollout)
    skipped = _metrics(train(tiny_config(settings)))
    monkeypatch.setattr(ALGORITHMS[algorithm], "one_pass", property(lambda self: False))
    scored = _metrics(train(tiny_config(settings)))
    assert asked == [False, False, True, True]
    # abs 5e-5: at step 1 the full run's KL is exactly 0 (both logprobs from one scoring
    # pass) and the fast run's is float32 noise between the update's full forward and the
    # reference's shared-prompt one, on logprobs of size ~10 (seen: 1.1e-5).
    keys = ["reward/mean", "loss/policy", "objective/kl", "objective/entropy"]
    if algorithm == "rloo":
        keys.append("objective/score_shaped")  # the score less the KL penalty
    for fast, full in zip(skipped, scored):
        for key in keys:
            assert fast.values[key] == pytest.approx(full.values[key], rel=1e-4, abs=5e-5), key
    if algorithm == "grpo":
        assert skipped[0].values["policy/clipfrac"] == 0.0  # the ratio is exactly 1


def test_rloo_over_several_minibatches_scores_the_policy_in_the_rollout():
    from core.algorithms import make_algorithm
    from core.lm.policy import load_models

    cfg = tiny_config({"algorithm.name": "rloo", "algorithm.minibatches": 2, **GROUPED})
    models = load_models(cfg.model, value_head=False, seed=0)
    assert not make_algorithm(cfg, models, None, None).one_pass


def test_lora_run_checkpoints_resumes_and_exports(tmp_path):
    from transformers import AutoModelForCausalLM

    from core.training.checkpoint import export_model

    cfg = tiny_config({"model.lora_r": 4, "training.steps": 2, "training.checkpoint_every": 1})
    events = list(train(cfg, checkpoint_dir=tmp_path / "ck"))
    ckpt = [e for e in events if isinstance(e, Checkpoint)][-1]
    assert (tmp_path / "ck" / "step_2" / "model" / "adapter_config.json").is_file()
    more = tiny_config({"model.lora_r": 4, "training.steps": 3})
    resumed = _metrics(train(more, checkpoint_dir=tmp_path / "ck", resume_from=ckpt.path))
    assert [m.step for m in resumed] == [3]
    out = export_model(tmp_path / "ck" / "step_2", tmp_path / "merged", "tiny-random", seed=0)
    model = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, adapter merged
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_a_full_disk_while_checkpointing_waits_and_keeps_the_older_checkpoint(
    tmp_path, monkeypatch
):
    """The disk is full at step 4's save (once): the run pauses with a message, step 2's
    checkpoint is intact meanwhile, and once a save fits the run goes on and saves step 4."""
    import errno

    from core.training.checkpoint import folder

    cfg = tiny_config({"training.steps": 4, "training.checkpoint_every": 2})
    real_write, calls = folder.write_trainer_state, []

    def write_then_fill_the_disk(state, where):
        calls.append(where)
        if len(calls) == 2:
            assert checkpoint_problem(tmp_path / "step_2") is None  # kept while it waits
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(state, where)

    monkeypatch.setattr(folder, "write_trainer_state", write_then_fill_the_disk)
    events = list(train(cfg, checkpoint_dir=tmp_path))
    paused = [e for e in events if isinstance(e, Status) and e.state == "paused"]
    assert len(paused) == 1 and "no space for the checkpoint of step 4" in paused[0].message
    assert events[-1].state == "completed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_2", "step_4"]
    assert checkpoint_problem(tmp_path / "step_2") is None
    assert checkpoint_problem(tmp_path / "step_4") is None


def test_a_nan_reward_stops_with_a_clear_error_and_keeps_the_last_good_step(tmp_path):
    from core.rewards import RewardError

    reward = tmp_path / "flaky.py"
    reward.write_text(
        "calls = 0\n"
        "def reward(prompts, completions, **columns):\n"
        "    global calls\n"
        "    calls += 1\n"
        "    return [float('nan') if calls == 3 else 0.5 for _ in completions]\n"
    )
    cfg = tiny_config(
        {
            "training.steps": 5,
            "training.checkpoint_every": 0,
            "reward.components": [{"kind": "python", "params": {"path": str(reward)}}],
        }
    )
    seen = []
    with pytest.raises(RewardError, match="nan for sample 0"):
        for event in train(cfg, checkpoint_dir=tmp_path / "ck"):
            seen.append(event)
    assert [m.step for m in _metrics(seen)] == [1, 2]
    assert [e.step for e in seen if isinstance(e, Checkpoint)] == [2]  # resume from here


def test_online_ilql_logs_its_losses_and_fills_the_replay_buffer():
    cfg = tiny_config(
        {"algorithm.name": "ilql", "training.steps": 3, "training.checkpoint_every": 0}
    )
    metrics = _metrics(train(cfg))
    last = metrics[-1].values
    assert {"loss/q", "loss/v", "loss/cql", "loss/awac", "q/mean", "v/mean"} <= set(last)
    assert [m.values["ilql/buffer_size"] for m in metrics] == [8.0, 16.0, 24.0]


@pytest.mark.parametrize("native", [True, False])
def test_the_log_says_when_this_cpu_could_train_in_bf16(monkeypatch, native):
    """float32 on a CPU with bf16 instructions: the run's log names the faster setting."""
    import core.lm.device

    monkeypatch.setattr(core.lm.device, "cpu_bf16_native", lambda: native)
    cfg = tiny_config(
        {
            "model.device": "cpu",
            "model.dtype": "float32",
            "training.steps": 1,
            "training.checkpoint_every": 0,
        }
    )
    lines = [e.message for e in train(cfg) if isinstance(e, Log)]
    hinted = [line for line in lines if 'model.dtype = "bfloat16"' in line]
    assert len(hinted) == (1 if native else 0), lines
