"""generation.sampling_dtype = "bfloat16": rollouts from a bfloat16 copy of the policy,
refreshed after every update, with the truncated importance weight on every
policy-gradient loss (issue 18)."""

from __future__ import annotations

import copy
import importlib.util
import math
import sys

import pytest
import torch

from core.algorithms import make_algorithm
from core.algorithms.common import sampler_mismatch, truncated_is_weights
from core.config import ConfigError, validate
from core.events import Log, Metrics
from core.generation.rollout import generate_rollout
from core.lm.packed_linear import NO_BF16_PACKING, available, cpu_packs_bf16, packed_linears
from core.lm.policy import load_models
from core.lm.sampling_copy import SamplingCopy
from core.training.loop import train
from core.training.run import TrainingRun
from tests.core.helpers import ROOT, close, t, tiny_config

GROUPED = {"algorithm.group_size": 2, "training.batch_size": 3, "generation.max_new_tokens": 6}
PROMPTS = [p for p in ("a b c", "hello there", "one two") for _ in range(2)]
SAMPLING_METRICS = (
    "sampling/kl_sampler_trainer",
    "sampling/is_weight_mean",
    "sampling/is_clipped_frac",
)


# ---- the weight, by hand ---------------------------------------------------------------------


def test_the_truncated_weight_is_the_ratio_capped_and_one_at_padding():
    logp = t([[math.log(0.5), math.log(0.9), math.log(0.2)]])
    sampler = t([[math.log(0.25), math.log(0.3), math.log(0.4)]])
    mask = t([[1, 1, 0]])
    w = truncated_is_weights(logp, sampler, mask, cap=2.0)
    # 0.5 / 0.25 = 2 (at the cap), 0.9 / 0.3 = 3 -> 2; padding: 1 whatever it holds
    close(w, [[2.0, 2.0, 1.0]], atol=1e-6)
    close(truncated_is_weights(logp, sampler, mask, cap=5.0), [[2.0, 3.0, 1.0]], atol=1e-5)
    assert not w.requires_grad


def test_the_mismatch_metrics_by_hand():
    logp = t([[math.log(0.5), math.log(0.3), 0.0], [math.log(0.4), 0.0, 0.0]])
    sampler = t([[math.log(0.25), math.log(0.6), 9.0], [math.log(0.4), 0.0, 0.0]])
    mask = t([[1, 1, 0], [1, 0, 0]])
    got = sampler_mismatch(logp, sampler, mask, cap=1.5)
    # ratios 2, 0.5, 1 over the three real tokens; capped 1.5, 0.5, 1
    assert got["sampling/is_weight_mean"] == pytest.approx(3.0 / 3)
    assert got["sampling/is_clipped_frac"] == pytest.approx(1 / 3)
    # k1 of KL(sampler || policy): mean of log(0.25/0.5), log(0.6/0.3), 0
    assert got["sampling/kl_sampler_trainer"] == pytest.approx(
        (math.log(0.5) + math.log(2.0) + 0.0) / 3, abs=1e-6
    )


# ---- the loss ----------------------------------------------------------------------------------


class Capture(torch.optim.Optimizer):
    """Records each step's gradients instead of moving the weights."""

    def __init__(self, params):
        super().__init__(params, {"lr": 0.0})
        self.steps: list[torch.Tensor] = []

    def step(self, closure=None):
        grads = [
            p.grad.flatten() for g in self.param_groups for p in g["params"] if p.grad is not None
        ]
        self.steps.append(torch.cat(grads).clone())


@pytest.fixture(scope="module")
def sampled():
    cfg = tiny_config({"algorithm.name": "ppo", **GROUPED})
    models = load_models(cfg.model, value_head=True, seed=0)
    torch.manual_seed(0)
    rollout = generate_rollout(models, PROMPTS, cfg.generation, cfg.data.max_prompt_tokens)
    rollout.ref_logprobs = rollout.logprobs - 0.3 * torch.rand_like(rollout.logprobs)
    return models, rollout


def gradients(sampled, algorithm: str, sampler_logprobs=None) -> list[torch.Tensor]:
    models, rollout = sampled
    cfg = tiny_config(
        {**GROUPED, "algorithm.name": algorithm, "algorithm.epochs": 1, "algorithm.kl_coef": 0.5}
    )
    opt = Capture([p for p in models.policy.parameters() if p.requires_grad])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    algo = make_algorithm(cfg, models, opt, sched)
    algo.max_grad_norm = 0.0
    shown = copy.copy(rollout)
    shown.sampler_logprobs = sampler_logprobs
    torch.manual_seed(1)
    result = algo.update(shown, torch.tensor([1.0, 0.0, 0.2, 0.9, 0.5, 0.4]))
    return opt.steps, result.metrics


@pytest.mark.parametrize("algorithm", ["ppo", "a2c", "reinforce", "rloo", "grpo"])
def test_weights_of_one_leave_the_gradient_bit_identical_and_others_move_it(sampled, algorithm):
    """float32 sampling (no sampler logprobs) computes today's loss; a sampler that agreed
    with the policy exactly (weights all 1) gives the very same bits, and one that did not
    changes the gradient of every policy-gradient algorithm."""
    _, rollout = sampled
    today, metrics = gradients(sampled, algorithm)
    assert not any(k.startswith("sampling/") for k in metrics)
    agreeing, metrics = gradients(sampled, algorithm, rollout.logprobs.clone())
    assert metrics["sampling/is_weight_mean"] == 1.0
    assert metrics["sampling/kl_sampler_trainer"] == 0.0
    assert len(today) == len(agreeing) > 0
    assert all(torch.equal(a, b) for a, b in zip(today, agreeing))
    off = rollout.logprobs + 0.5 * torch.rand_like(rollout.logprobs)  # ratios 0.6..1
    moved, metrics = gradients(sampled, algorithm, off)
    assert metrics["sampling/is_weight_mean"] < 1.0
    assert (moved[0] - today[0]).norm() > 1e-3 * today[0].norm()


# ---- the copy and a run --------------------------------------------------------------------------


@pytest.mark.parametrize("lora_r", [0, 4])
def test_the_copy_is_bfloat16_and_refresh_copies_the_policy_in_place(lora_r):
    models = load_models(tiny_config({"model.lora_r": lora_r}).model, value_head=False, seed=0)
    lm = models.policy.lm
    sampling = SamplingCopy(lm)
    assert {p.dtype for p in sampling.lm.parameters()} == {torch.bfloat16}
    assert {b.dtype for b in sampling.lm.buffers()} == {torch.float32}  # rotary frequencies
    with torch.no_grad():
        for p in lm.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    before = [p.data_ptr() for p in sampling.lm.parameters()]
    assert sampling.refresh() >= 0.0
    assert [p.data_ptr() for p in sampling.lm.parameters()] == before  # no new tensors
    expected = copy.deepcopy(lm).merge_and_unload() if lora_r else lm
    for name, p in sampling.lm.named_parameters():
        assert torch.equal(p, expected.get_parameter(name).detach().bfloat16()), name
    if lora_r:  # the policy keeps its adapter, and its base weights are untouched
        assert hasattr(lm, "peft_config")


def test_a_rollout_from_the_copy_keeps_both_logprobs_even_for_one_pass():
    cfg = tiny_config(GROUPED)
    models = load_models(cfg.model, value_head=False, seed=0)
    sampling = SamplingCopy(models.policy.lm)
    torch.manual_seed(0)
    rollout = generate_rollout(
        models, PROMPTS, cfg.generation, 64, score_policy=False, sampling=sampling
    )
    assert rollout.logprobs is not None and rollout.sampler_logprobs is not None
    m = rollout.mask.bool()
    gap = (rollout.logprobs - rollout.sampler_logprobs)[m].abs()
    assert 0 < float(gap.max()) < 2.0  # bfloat16 rounding, not another model
    if available(models.device) and cpu_packs_bf16():  # the copy samples on packed weights
        with packed_linears(sampling.lm, len(PROMPTS), torch.bfloat16):
            assert [mod for mod in sampling.lm.modules() if "forward" in mod.__dict__]


def _run(monkeypatch, settings: dict):
    runs = []
    opened = TrainingRun._sampling_copy

    def keep(self):
        runs.append(self)
        return opened(self)

    monkeypatch.setattr(TrainingRun, "_sampling_copy", keep)
    cfg = tiny_config(
        {
            "algorithm.name": "grpo",
            **GROUPED,
            "algorithm.epochs": 1,
            "algorithm.minibatches": 1,
            "training.steps": 2,
            "training.checkpoint_every": 0,
            "model.device": "cpu",
            "generation.sampling_dtype": "bfloat16",
            **settings,
        }
    )
    events = list(train(cfg))
    return runs[0], events


def test_a_grpo_run_samples_from_a_fresh_bfloat16_copy_and_logs_the_mismatch(monkeypatch):
    monkeypatch.delenv(NO_BF16_PACKING, raising=False)
    run, events = _run(monkeypatch, {})
    assert events[-1].state == "completed"
    metrics = [e.values for e in events if isinstance(e, Metrics)]
    assert len(metrics) == 2
    for values in metrics:
        for key in (*SAMPLING_METRICS, "time/sync_s"):
            assert math.isfinite(values[key]), (key, values[key])
        assert values["sampling/is_weight_mean"] > 0
        assert 0.0 <= values["sampling/is_clipped_frac"] <= 1.0
    # after the last update the copy holds the policy's moved weights, cast
    assert {p.dtype for p in run.sampling.lm.parameters()} == {torch.bfloat16}
    policy = run.models.policy.lm
    for name, p in run.sampling.lm.named_parameters():
        assert torch.equal(p, policy.get_parameter(name).detach().bfloat16()), name


def test_a_cpu_without_bfloat16_instructions_samples_from_the_policy_and_says_so(monkeypatch):
    monkeypatch.setenv(NO_BF16_PACKING, "1")
    run, events = _run(monkeypatch, {})
    assert events[-1].state == "completed"
    lines = [e.message for e in events if isinstance(e, Log) and "sampling_dtype" in e.message]
    assert len(lines) == 1 and "sampled from the policy itself" in lines[0], lines
    assert run.sampling is None
    metrics = [e.values for e in events if isinstance(e, Metrics)]
    assert metrics and not any(k.startswith("sampling/") for v in metrics for k in v)


def test_ilql_and_a_stray_cap_are_refused():
    with pytest.raises(ConfigError, match="sampling_dtype.*ilql"):
        validate(tiny_config({"algorithm.name": "ilql", "generation.sampling_dtype": "bfloat16"}))
    with pytest.raises(ConfigError, match="is_clip_max"):
        validate(tiny_config({"algorithm.name": "ilql", "algorithm.is_clip_max": 3.0}))
    assert validate(tiny_config({"generation.sampling_dtype": "bfloat16"}))


def test_the_benchmark_hands_the_sampling_dtype_to_our_side_only():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("vs_trl", ROOT / "bench" / "vs_trl.py")
        vs_trl = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(vs_trl)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    s = {
        "algorithm": "grpo",
        "generations": 2,
        "beta": 0.04,
        "prompts": 2,
        "steps": 1,
        "lr": 1e-5,
        "seed": 0,
        "tokens": 8,
        "device": "cpu",
    }
    assert vs_trl.our_config(s).generation.sampling_dtype == "float32"
    ours = vs_trl.our_config({**s, "sampling_dtype": "bfloat16"})
    assert ours.generation.sampling_dtype == "bfloat16"
    assert "sampling" not in str(vs_trl.trl_args({**s, "sampling_dtype": "bfloat16"}, "/tmp/x"))
