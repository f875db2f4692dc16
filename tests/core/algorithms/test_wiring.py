"""The algorithms' settings reach their gradients (issue 18's wiring bugs): each test
builds a real tiny-random policy, samples a real rollout and compares the gradients the
update hands the optimiser."""

from __future__ import annotations

import copy

import pytest
import torch

from core.algorithms import make_algorithm
from core.generation.rollout import generate_rollout
from core.lm.policy import load_models
from tests.core.helpers import tiny_config

GROUPED = {"algorithm.group_size": 2, "training.batch_size": 3, "generation.max_new_tokens": 6}


class Capture(torch.optim.Optimizer):
    """An optimiser that records each step's gradients instead of moving the weights."""

    def __init__(self, params):
        super().__init__(params, {"lr": 0.0})
        self.steps: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        grads = [
            p.grad.clone() for g in self.param_groups for p in g["params"] if p.grad is not None
        ]
        self.steps.append(grads)


@pytest.fixture(scope="module")
def sampled():
    """Models and one rollout of 6 completions (3 prompts x 2), sampled once."""
    cfg = tiny_config({"algorithm.name": "rloo", **GROUPED})
    models = load_models(cfg.model, value_head=True, seed=0)
    torch.manual_seed(0)
    prompts = [p for p in ("a b c", "hello there", "one two") for _ in range(2)]
    rollout = generate_rollout(models, prompts, cfg.generation, cfg.data.max_prompt_tokens)
    # A reference that differs from the policy, so every KL term is non-zero.
    rollout.ref_logprobs = rollout.logprobs - 0.3 * torch.rand_like(rollout.logprobs)
    # Completions of different lengths (as if some ended early), so weighting by rows
    # and weighting by tokens disagree.
    lengths = torch.tensor([6, 2, 4, 6, 1, 3])
    rollout.mask = (torch.arange(rollout.mask.shape[1]) < lengths[:, None]).to(rollout.mask.dtype)
    rollout.ended = lengths < 6
    return models, rollout


def gradients(sampled, settings: dict, scores=(1.0, 0.0, 0.2, 0.9, 0.5, 0.4)):
    """The gradient steps one update takes with these settings (flattened per step)."""
    models, rollout = sampled
    cfg = tiny_config(
        {**GROUPED, "algorithm.kl_coef": 0.5, "algorithm.adaptive_kl": False, **settings}
    )
    params = [p for p in models.policy.parameters() if p.requires_grad]
    opt = Capture(params)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    cfg = type(cfg)(**{**cfg.__dict__})
    algo = make_algorithm(cfg, models, opt, sched)
    algo.max_grad_norm = 0.0  # compare raw gradients, not clipped ones
    torch.manual_seed(1)
    algo.update(copy.copy(rollout), torch.tensor(scores))
    return [torch.cat([g.flatten() for g in step]) for step in opt.steps]


def test_grpo_honours_kl_in_and_kl_estimator(sampled):
    base = {"algorithm.name": "grpo", "algorithm.epochs": 1, "algorithm.minibatches": 1}
    in_loss = gradients(sampled, {**base, "algorithm.kl_in": "loss"})[0]
    in_reward = gradients(sampled, {**base, "algorithm.kl_in": "reward"})[0]
    k2_loss = gradients(
        sampled, {**base, "algorithm.kl_in": "loss", "algorithm.kl_estimator": "k2"}
    )[0]
    auto = gradients(sampled, base)[0]
    assert torch.equal(auto, in_loss)  # GRPO's own: k3 in the loss, as before
    assert (in_loss - in_reward).norm() > 1e-3 * in_loss.norm()
    assert (in_loss - k2_loss).norm() > 1e-3 * in_loss.norm()


@pytest.mark.parametrize("kl_in", ["loss", "reward"])
def test_rloo_minibatches_leave_the_gradient_alone(sampled, kl_in):
    grads = [
        gradients(
            sampled,
            {"algorithm.name": "rloo", "algorithm.kl_in": kl_in, "algorithm.minibatches": n},
        )
        for n in (1, 2, 3)
    ]
    assert all(len(g) == 1 for g in grads)  # one optimiser step per batch
    for g in grads[1:]:
        assert (g[0] - grads[0][0]).norm() < 1e-5 * grads[0][0].norm()


def test_a2c_takes_one_step_per_batch_whatever_its_minibatches(sampled):
    one = gradients(sampled, {"algorithm.name": "a2c", "algorithm.minibatches": 1})
    three = gradients(sampled, {"algorithm.name": "a2c", "algorithm.minibatches": 3})
    assert len(one) == len(three) == 1
    # float32 sums in another order: equal up to rounding over 3.2M weights
    assert (three[0] - one[0]).norm() < 1e-5 * one[0].norm()


@pytest.mark.parametrize("name", ["a2c", "ppo", "reinforce", "rloo", "grpo"])
def test_the_entropy_bonus_changes_the_gradient(sampled, name):
    plain = gradients(sampled, {"algorithm.name": name, "algorithm.minibatches": 1})[0]
    bonus = gradients(
        sampled, {"algorithm.name": name, "algorithm.minibatches": 1, "algorithm.entropy_coef": 0.1}
    )[0]
    assert (plain - bonus).norm() > 1e-4 * plain.norm()


def test_truncated_completions_leave_the_loss(sampled):
    models, rollout = sampled
    cut = copy.copy(rollout)
    cut.ended = torch.zeros_like(rollout.ended)  # every completion hit max_new_tokens
    settings = {
        "algorithm.name": "grpo",
        "algorithm.minibatches": 1,
        "algorithm.epochs": 1,
        "algorithm.mask_truncated_completions": True,
    }
    grads = gradients((models, cut), settings)[0]
    assert float(grads.abs().max()) == 0.0
    kept = gradients((models, cut), {**settings, "algorithm.mask_truncated_completions": False})[0]
    assert float(kept.abs().max()) > 0.0


def test_the_adaptive_kl_controller_counts_every_process(sampled, monkeypatch):
    from core.parallel import distributed

    models, rollout = sampled
    cfg = tiny_config({**GROUPED, "algorithm.name": "reinforce", "algorithm.kl_coef": 0.1})
    moves = []
    for world in (1, 2):
        monkeypatch.setattr(distributed, "world_size", lambda w=world: w)
        opt = Capture([p for p in models.policy.parameters() if p.requires_grad])
        algo = make_algorithm(cfg, models, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1))
        algo.update(copy.copy(rollout), torch.ones(6))
        moves.append(algo.kl_ctl.value - 0.1)
    # KL far below the target: the coefficient falls by 0.2 x completions / horizon,
    # with 2 processes for 12 completions instead of 6.
    assert moves[0] == pytest.approx(-0.1 * 0.2 * 6 / cfg.algorithm.kl_horizon)
    assert moves[1] == pytest.approx(2 * moves[0])


def test_ppo_skips_a_minibatch_whose_ratio_spikes(sampled):
    models, rollout = sampled
    stale = copy.copy(rollout)
    stale.logprobs = rollout.logprobs - 1.0  # every ratio is e = 2.72
    settings = {"algorithm.name": "ppo", "algorithm.epochs": 1, "algorithm.minibatches": 2}
    assert len(gradients((models, stale), {**settings, "algorithm.ratio_threshold": 2.0})) == 0
    assert len(gradients((models, stale), {**settings, "algorithm.ratio_threshold": 3.0})) == 2


def test_ppo_stops_its_epochs_once_past_target_kl():
    from core.events import Metrics
    from core.training.loop import train

    base = {"algorithm.epochs": 4, "training.steps": 1, "training.learning_rate": 1e-3}
    for target, epochs in ((0.0, 4), (1e-9, 1)):
        settings = {**base, "algorithm.target_kl": target}
        (m,) = [e for e in train(tiny_config(settings)) if isinstance(e, Metrics)]
        assert m.values["policy/epochs"] == epochs


def test_ppo_bootstraps_cut_completions_from_the_value_after_their_last_token():
    """Two steps on and off: the first is the same (the value head starts at zero, so every
    bootstrap is 0); in the second a completion cut by max_new_tokens gets other advantages."""
    from core.events import Metrics, Samples
    from core.training.loop import train

    base = {"training.steps": 2, "training.checkpoint_every": 0, "logging.samples_per_step": 8}
    runs = {}
    for on in (True, False):
        events = list(train(tiny_config({**base, "algorithm.bootstrap_truncated": on})))
        metrics = [e for e in events if isinstance(e, Metrics)]
        samples = [e.rows for e in events if isinstance(e, Samples)]
        assert len(metrics) == len(samples) == 2
        runs[on] = metrics, samples
    (m_on, s_on), (m_off, s_off) = runs[True], runs[False]
    assert "value/bootstrap_mean" not in m_off[1].values
    assert m_on[0].values["value/bootstrap_mean"] == 0.0
    assert m_on[1].values["value/bootstrap_mean"] != 0.0
    assert [r.advantages for r in s_on[0]] == [r.advantages for r in s_off[0]]
    # The same completions (the first step moved the weights alike), other advantages.
    assert [r.completion for r in s_on[1]] == [r.completion for r in s_off[1]]
    cut = [i for i, r in enumerate(s_on[1]) if len(r.tokens) == 8]  # max_new_tokens
    assert cut
    for i in cut:
        assert s_on[1][i].advantages != pytest.approx(s_off[1][i].advantages, abs=1e-7)
