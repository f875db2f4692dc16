"""Hand-checked tests for the RL tensor math (core.algorithms.common / ppo / reinforce).

Expected numbers are literals worked out by hand in the comments next to them.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.algorithms.common import (
    AdaptiveKLController,
    FixedKLController,
    RunningMoments,
    clip_scores,
    explained_variance,
    kl_estimate,
    kl_k1,
    kl_k2,
    kl_k3,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
)
from core.algorithms.ppo import (
    gae_advantages,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
    truncation_bootstrap,
)
from core.algorithms.reinforce import (
    MovingAverageBaseline,
    reinforce_loss,
    sequence_advantages,
)
from core.lm.forward import entropy_from_logits, logprobs_from_logits
from tests.core.helpers import NAN, close, t

# --- masked reductions -----------------------------------------------------------------------

# Masked values are 1, 2, 3, 4; padding holds 100 and NaN which must never matter.
X = t([[1.0, 2.0, 3.0], [4.0, 100.0, NAN]])
M = t([[1, 1, 1], [1, 0, 0]])


def test_masked_sum_and_mean():
    close(masked_sum(X, M), 10.0)  # 1+2+3+4
    close(masked_sum(X, M, dim=1), [6.0, 4.0])
    close(masked_mean(X, M), 2.5)  # 10/4
    close(masked_mean(X, M, dim=1), [2.0, 4.0])  # 6/3, 4/1
    close(masked_mean(X, M, dim=0), [2.5, 2.0, 3.0])  # (1+4)/2, 2/1, 3/1
    # An empty mask gives 0, not NaN.
    close(masked_mean(X, torch.zeros(2, 3)), 0.0)


def test_masked_var():
    # deviations from 2.5: -1.5 -0.5 0.5 1.5 -> squares 2.25+0.25+0.25+2.25 = 5
    close(masked_var(X, M), 5.0 / 3.0)  # unbiased: 5/3 = 1.6666667
    close(masked_var(X, M, unbiased=False), 1.25)  # 5/4
    # A single element: the correction is skipped and the result is 0, not NaN.
    close(masked_var(X, t([[0, 1, 0], [0, 0, 0]])), 0.0)


def test_masked_whiten():
    w = masked_whiten(X, M)
    # (x - 2.5) / sqrt(5/3);  sqrt(5/3) = 1.2909944
    # 1 -> -1.5/1.2909944 = -1.1618950 ; 2 -> -0.5/1.2909944 = -0.3872983
    close(w, [[-1.1618950, -0.3872983, 0.3872983], [1.1618950, 0.0, 0.0]])
    assert not torch.isnan(w).any()
    close(masked_mean(w, M), 0.0)
    close(masked_var(w, M), 1.0, atol=1e-5)
    # shift_mean=False keeps the mean 2.5: -1.1618950 + 2.5 = 1.338105
    w2 = masked_whiten(X, M, shift_mean=False)
    close(w2, [[1.3381050, 2.1127017, 2.8872983], [3.6618950, 0.0, 0.0]])


def test_masked_functions_gradient_is_finite_with_nan_padding():
    x = X.clone().requires_grad_(True)
    masked_whiten(x, M).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[1, 1] == 0 and x.grad[1, 2] == 0


# --- log-probs and entropy -------------------------------------------------------------------


def _logits_0123():
    # softmax(log [1,2,3,4]) = [0.1, 0.2, 0.3, 0.4]; the +7 shift must not change anything.
    row = [math.log(1.0) + 7, math.log(2.0) + 7, math.log(3.0) + 7, math.log(4.0) + 7]
    uniform = [0.0, 0.0, 0.0, 0.0]
    return t([[row, uniform], [uniform, row]])  # [B=2, R=2, V=4]


def test_logprobs_from_logits_hand_values():
    logits = _logits_0123()
    tokens = torch.tensor([[2, 1], [0, 3]])
    # ln 0.3 = -1.2039728 ; ln 0.25 = -1.3862944 ; ln 0.4 = -0.9162907
    expected = [[-1.2039728, -1.3862944], [-1.3862944, -0.9162907]]
    out = logprobs_from_logits(logits, tokens)
    assert out.dtype == torch.float32 and out.shape == (2, 2)
    close(out, expected)
    # Chunking over token positions gives the same numbers.
    close(logprobs_from_logits(logits, tokens, chunk_size=1), expected)
    close(logprobs_from_logits(logits, tokens, chunk_size=3), expected)


def test_logprobs_from_logits_gradient_matches_plain_log_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g, requires_grad=True)
    tokens = torch.randint(0, 11, (3, 5), generator=g)
    logprobs_from_logits(logits, tokens, chunk_size=4).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).sum().backward()
    close(ours, logits.grad, atol=1e-6)


def test_entropy_from_logits_hand_values():
    # H[0.1,0.2,0.3,0.4] = 0.1*2.3025851 + 0.2*1.6094379 + 0.3*1.2039728 + 0.4*0.9162907
    #                    = 0.2302585 + 0.3218876 + 0.3611918 + 0.3665163 = 1.2798542
    # H[uniform over 4] = ln 4 = 1.3862944
    expected = [[1.2798542, 1.3862944], [1.3862944, 1.2798542]]
    close(entropy_from_logits(_logits_0123()), expected)
    close(entropy_from_logits(_logits_0123(), chunk_size=1), expected)


# --- KL estimators ---------------------------------------------------------------------------


def test_kl_estimators_known_values():
    logp = t([-1.0, -2.0, -0.7])
    ref = t([-2.0, -1.0, -0.7])
    # d = logp - ref = [1, -1, 0]
    close(kl_k1(logp, ref), [1.0, -1.0, 0.0])
    close(kl_k2(logp, ref), [0.5, 0.5, 0.0])  # 0.5 * d^2
    # k3 with u = ref - logp = [-1, 1, 0]: e^u - u - 1
    #   e^-1 + 1 - 1 = 0.3678794 ; e^1 - 1 - 1 = 0.7182818 ; 1 - 0 - 1 = 0
    close(kl_k3(logp, ref), [0.3678794, 0.7182818, 0.0])
    close(kl_estimate(logp, ref, "k1"), [1.0, -1.0, 0.0])
    close(kl_estimate(logp, ref, "k2"), [0.5, 0.5, 0.0])
    close(kl_estimate(logp, ref, "k3"), [0.3678794, 0.7182818, 0.0])


def test_k3_is_nonnegative_and_zero_on_equal():
    g = torch.Generator().manual_seed(1)
    logp = torch.randn(1000, generator=g) * 5
    ref = torch.randn(1000, generator=g) * 5
    assert (kl_k3(logp, ref) >= 0).all()
    tiny = logp + 1e-7  # near-equal inputs: still >= 0
    assert (kl_k3(logp, tiny) >= 0).all()
    assert (kl_k3(logp, logp) == 0).all()
    assert (kl_k2(logp, ref) >= 0).all()


def test_kl_estimate_unknown_name():
    with pytest.raises(ValueError, match="'k1', 'k2', 'k3'"):
        kl_estimate(t([0.0]), t([0.0]), "k4")


# --- KL controllers --------------------------------------------------------------------------


def test_adaptive_kl_controller_updates_and_clips():
    # current 9: 9/6 - 1 = 0.5, clipped to 0.2 -> 0.2 * (1 + 0.2*256/10000) = 0.2 * 1.00512
    c = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    assert c.update(9.0, 256) == pytest.approx(0.201024, abs=1e-12)
    assert c.value == pytest.approx(0.201024, abs=1e-12)
    # current 1: 1/6 - 1 = -0.8333, clipped to -0.2 -> 0.2 * (1 - 0.00512) = 0.198976
    c = AdaptiveKLController(0.2, 6.0, 10000)
    assert c.update(1.0, 256) == pytest.approx(0.198976, abs=1e-12)
    # current 6.6: 6.6/6 - 1 = 0.1 (inside the clip) -> 0.2 * (1 + 0.1*0.0256) = 0.200512
    c = AdaptiveKLController(0.2, 6.0, 10000)
    assert c.update(6.6, 256) == pytest.approx(0.200512, abs=1e-12)
    # Compounding: a second clipped-up step multiplies again: 0.200512 * 1.00512 = 0.2015386...
    # 0.200512 * 1.00512 = 0.200512 + 0.200512*0.00512 = 0.200512 + 0.00102662144 = 0.20153862144
    assert c.update(100.0, 256) == pytest.approx(0.20153862144, abs=1e-12)
    # Accepts a 0-d tensor KL.
    c = AdaptiveKLController(0.2, 6.0, 10000)
    assert c.update(torch.tensor(9.0), 256) == pytest.approx(0.201024, abs=1e-7)


def test_kl_controller_state_dicts():
    c = AdaptiveKLController(0.2, 6.0, 10000)
    c.update(9.0, 256)
    d = c.state_dict()
    c2 = AdaptiveKLController(0.5, 6.0, 10000)
    c2.load_state_dict(d)
    assert c2.value == c.value
    f = FixedKLController(0.05)
    assert f.update(123.0, 256) == 0.05 and f.value == 0.05
    f2 = FixedKLController(1.0)
    f2.load_state_dict(f.state_dict())
    assert f2.value == 0.05
    with pytest.raises(ValueError):
        AdaptiveKLController(0.2, 0.0, 10000)


# --- explained variance, score clipping, running moments -------------------------------------


def test_explained_variance():
    mask = t([[1, 1], [1, 1], [0, 0]])
    returns = t([[1.0, 2.0], [3.0, 4.0], [NAN, 50.0]])
    assert explained_variance(returns.clone(), returns, mask) == pytest.approx(1.0)
    # residual [0,0,0,1]: mean .25, var = (3*.0625 + .5625)/4 = .1875 ; Var[returns] = 1.25
    # 1 - .1875/1.25 = 1 - .15 = .85
    values = t([[1.0, 2.0], [3.0, 3.0], [7.0, -7.0]])
    assert explained_variance(values, returns, mask) == pytest.approx(0.85, abs=1e-6)
    assert math.isnan(explained_variance(values, t([[2.0, 2.0], [2.0, 2.0], [1.0, 9.0]]), mask))


def test_clip_scores():
    close(clip_scores(t([-5.0, 0.5, 3.0]), 1.0), [-1.0, 0.5, 1.0])
    close(clip_scores(t([-5.0, 0.5, 3.0]), None), [-5.0, 0.5, 3.0])
    with pytest.raises(ValueError):
        clip_scores(t([1.0]), 0.0)


def test_running_moments_against_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (5, 1, 17, 8, 2)]
    rm = RunningMoments()
    assert rm.std == 1.0 and rm.mean == 0.0  # before any data
    seen = []
    for b in batches:
        bm, bs = rm.update(torch.tensor(b, dtype=torch.float32))
        seen.extend(b.astype(np.float32).tolist())
        assert bm == pytest.approx(float(np.mean(b.astype(np.float32))), abs=1e-5)
        expected_bs = float(np.std(b.astype(np.float32), ddof=1)) if len(b) > 1 else 0.0
        assert bs == pytest.approx(expected_bs, abs=1e-5)
        assert rm.mean == pytest.approx(float(np.mean(seen)), abs=1e-9)
        if len(seen) > 1:
            assert rm.std == pytest.approx(float(np.std(seen, ddof=1)), abs=1e-9)
    assert rm.count == 33
    rm2 = RunningMoments()
    rm2.load_state_dict(rm.state_dict())
    assert (rm2.mean, rm2.std, rm2.count) == (rm.mean, rm.std, rm.count)


def test_running_moments_small_hand_example():
    rm = RunningMoments()
    assert rm.update(t([1.0, 3.0])) == pytest.approx((2.0, math.sqrt(2.0)))  # var (1+1)/1 = 2
    rm.update(t([5.0]))
    # all values 1, 3, 5: mean 3, unbiased var (4 + 0 + 4)/2 = 4 -> std 2
    assert rm.mean == pytest.approx(3.0) and rm.std == pytest.approx(2.0)


# --- PPO -------------------------------------------------------------------------------------


def test_per_token_rewards_places_score_at_last_real_token():
    scores = t([2.0, -1.0, 5.0])
    logp = t([[-1.0, -2.0, -0.5], [-1.5, -0.2, -3.0], [-1.0, -1.0, -1.0]])
    ref = t([[-1.2, -1.5, -0.5], [-1.0, -0.7, 0.0], [0.0, 0.0, 0.0]])
    mask = t([[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    rewards, kl = per_token_rewards(scores, logp, ref, mask, kl_coef=0.1)
    # k1 row 0: -1-(-1.2)=0.2, -2-(-1.5)=-0.5, 0 ; row 1: -0.5, 0.5, padding -> 0
    close(kl, [[0.2, -0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    # rewards = -0.1*kl ; score added at the last real token (row 0 col 2, row 1 col 1)
    # row 0: -0.02, 0.05, 0 + 2 = 2 ; row 1: 0.05, -0.05 - 1 = -1.05, 0
    # row 2 has no real token: no score anywhere.
    close(rewards, [[-0.02, 0.05, 2.0], [0.05, -1.05, 0.0], [0.0, 0.0, 0.0]])
    # k3 estimator at row 0: u = ref - logp = [-0.2, 0.5, 0]
    #   e^-0.2 + 0.2 - 1 = 0.8187308 - 0.8 = 0.0187308 ; e^0.5 - 0.5 - 1 = 1.6487213 - 1.5
    _, kl3 = per_token_rewards(scores, logp, ref, mask, kl_coef=0.1, estimator="k3")
    close(kl3[0], [0.0187308, 0.1487213, 0.0])


def test_gae_three_token_row():
    # gamma 0.9, lam 0.95 (gamma*lam = 0.855); rewards [0,0,1]; values [0.5,0.4,0.3]
    # t=2: delta = 1 + 0.9*0 - 0.3 = 0.7                       A2 = 0.7
    # t=1: delta = 0 + 0.9*0.3 - 0.4 = -0.13                   A1 = -0.13 + 0.855*0.7 = 0.4685
    # t=0: delta = 0 + 0.9*0.4 - 0.5 = -0.14                   A0 = -0.14 + 0.855*0.4685
    #                                                              = -0.14 + 0.4005675 = 0.2605675
    # returns = A + V = [0.7605675, 0.8685, 1.0]
    adv, ret = gae_advantages(t([[0.0, 0.0, 1.0]]), t([[0.5, 0.4, 0.3]]), t([[1, 1, 1]]), 0.9, 0.95)
    close(adv, [[0.2605675, 0.4685, 0.7]])
    close(ret, [[0.7605675, 0.8685, 1.0]])


def test_gae_padding_does_not_leak():
    rewards = t([[0.0, 0.0, 1.0, 5.0, NAN], [1.0, 0.0, 0.0, 0.0, 0.0]])
    values = t([[0.5, 0.4, 0.3, 9.0, -3.0], [0.2, 7.0, NAN, 1.0, 1.0]])
    mask = t([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    adv, ret = gae_advantages(rewards, values, mask, 0.9, 0.95)
    # Row 0: identical to the unpadded 3-token row above, zeros after.
    close(adv[0], [0.2605675, 0.4685, 0.7, 0.0, 0.0])
    close(ret[0], [0.7605675, 0.8685, 1.0, 0.0, 0.0])
    # Row 1: a single token: A = 1 + 0 - 0.2 = 0.8 ; return = 0.8 + 0.2 = 1.0
    close(adv[1], [0.8, 0.0, 0.0, 0.0, 0.0])
    close(ret[1], [1.0, 0.0, 0.0, 0.0, 0.0])
    assert not adv.requires_grad


def test_gae_bootstraps_a_cut_row_from_the_value_after_its_last_token():
    # gamma 0.5, lam 1 (gamma*lam = 0.5). Row 0 was cut by max_new_tokens after 3 tokens,
    # row 1 ended (EOS) at its 2nd token; after the last token row 0 is worth 2, row 1 would
    # be worth 7 but its episode is over, so its bootstrap is 0 (the caller's part).
    rewards = t([[0.0, 0.0, 1.0], [0.0, 1.0, NAN]])
    values = t([[1.0, 1.0, 1.0], [1.0, 1.0, 9.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae_advantages(rewards, values, mask, 0.5, 1.0, bootstrap=t([2.0, 0.0]))
    # row 0, t=2: delta = 1 + 0.5*2 - 1 = 1         A2 = 1
    #        t=1: delta = 0 + 0.5*1 - 1 = -0.5      A1 = -0.5 + 0.5*1 = 0
    #        t=0: delta = 0 + 0.5*1 - 1 = -0.5      A0 = -0.5 + 0.5*0 = -0.5
    # returns = A + V = [0.5, 1, 2] (= the discounted 1 + 0.5*2 at t=2)
    close(adv[0], [-0.5, 0.0, 1.0])
    close(ret[0], [0.5, 1.0, 2.0])
    # row 1, t=1: delta = 1 + 0 - 1 = 0             A1 = 0
    #        t=0: delta = 0 + 0.5*1 - 1 = -0.5      A0 = -0.5
    close(adv[1], [-0.5, 0.0, 0.0])
    close(ret[1], [0.5, 1.0, 0.0])
    # Without a bootstrap (the old terminal-at-the-cut numbers), row 0:
    # t=2: delta = 1 - 1 = 0, A2 = 0 ; t=1: -0.5, A1 = -0.5 ; t=0: -0.5 - 0.25 = -0.75
    old, _ = gae_advantages(rewards, values, mask, 0.5, 1.0)
    close(old[0], [-0.75, -0.5, 0.0])
    close(old[1], adv[1])
    close(gae_advantages(rewards, values, mask, 0.5, 1.0, bootstrap=t([0.0, 0.0]))[0], old)


def test_truncation_bootstrap_is_zero_for_rows_that_ended():
    rollout = SimpleNamespace(ended=torch.tensor([False, True]), final_values=t([2.0, 7.0]))
    close(truncation_bootstrap(rollout), [2.0, 0.0])
    assert truncation_bootstrap(SimpleNamespace(ended=rollout.ended, final_values=None)) is None


def _policy_case():
    # eps = 0.2. Real tokens (ratio, A): (1, +1) (1.5, +1) (1.5, -1) | (0.5, +1) (0.5, -1) pad
    old = t([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    logp = old + t([[0.0, math.log(1.5), math.log(1.5)], [math.log(0.5), math.log(0.5), 30.0]])
    adv = t([[1.0, 1.0, -1.0], [1.0, -1.0, 1e6]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    return logp, old, adv, mask


def test_ppo_policy_loss_clipping():
    logp, old, adv, mask = _policy_case()
    logp.requires_grad_(True)
    loss, stats = ppo_policy_loss(logp, old, adv, mask, clip_range=0.2)
    # per token max(-A*r, -A*clip(r, .8, 1.2)):
    #   (1,+1):   max(-1, -1)       = -1     not clipped
    #   (1.5,+1): max(-1.5, -1.2)   = -1.2   clipped
    #   (1.5,-1): max(1.5, 1.2)     = 1.5    not clipped
    #   (0.5,+1): max(-0.5, -0.8)   = -0.5   not clipped
    #   (0.5,-1): max(0.5, 0.8)     = 0.8    clipped
    # loss = (-1 - 1.2 + 1.5 - 0.5 + 0.8) / 5 = -0.4 / 5 = -0.08
    close(loss, -0.08)
    close(stats["clipfrac"], 0.4)  # 2 of 5
    # approx_kl = mean((r-1) - ln r): 0 ; 0.5 - 0.4054651 = 0.0945349 (twice) ;
    #   -0.5 + 0.6931472 = 0.1931472 (twice) -> 0.5753641 / 5 = 0.1150728
    close(stats["approx_kl"], 0.1150728)
    # d loss / d logp = -A*r/5 where unclipped, 0 where clipped or padding
    #   (1,+1): -0.2 ; (1.5,+1): 0 ; (1.5,-1): 0.3 ; (0.5,+1): -0.1 ; (0.5,-1): 0 ; pad: 0
    loss.backward()
    close(logp.grad, [[-0.2, 0.0, 0.3], [-0.1, 0.0, 0.0]])


def test_ppo_value_loss_clipping():
    # eps = 0.2; (v, old, R):
    #   (1.0, 1.0, 2.0): (1-2)^2 = 1 ; clip v -> 1.0: 1          -> 1     not clipped
    #   (1.5, 1.0, 2.0): 0.25 ; clip v -> 1.2: (1.2-2)^2 = 0.64 -> 0.64  clipped
    #   (1.5, 1.0, 1.0): 0.25 ; clip v -> 1.2: 0.04             -> 0.25  not clipped
    #   (0.5, 1.0, 0.0): 0.25 ; clip v -> 0.8: 0.64             -> 0.64  clipped
    # loss = 0.5 * (1 + 0.64 + 0.25 + 0.64) / 4 = 0.5 * 0.6325 = 0.31625
    values = t([[1.0, 1.5, 1.5], [0.5, NAN, 99.0]]).requires_grad_(True)
    old = t([[1.0, 1.0, 1.0], [1.0, 0.0, NAN]])
    returns = t([[2.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    mask = t([[1, 1, 1], [1, 0, 0]])
    loss, stats = ppo_value_loss(values, old, returns, mask, clip_range_value=0.2)
    close(loss, 0.31625)
    close(stats["vf_clipfrac"], 0.5)
    loss.backward()
    # d/dv of 0.5*(v-R)^2/4 = (v-R)/4 where unclipped term is used: (1-2)/4 = -0.25 ;
    # (1.5-1)/4 = 0.125 ; clipped tokens and padding: 0
    close(values.grad, [[-0.25, 0.0, 0.125], [0.0, 0.0, 0.0]])


# --- REINFORCE -------------------------------------------------------------------------------


def test_moving_average_baseline():
    b = MovingAverageBaseline(0.9)
    assert b.value is None
    assert b.update(1.0) == pytest.approx(1.0)  # first update: the batch mean
    assert b.update(2.0) == pytest.approx(1.1)  # 0.9*1 + 0.1*2
    assert b.update(0.0) == pytest.approx(0.99)  # 0.9*1.1 + 0.1*0
    b2 = MovingAverageBaseline(0.9)
    b2.load_state_dict(b.state_dict())
    assert b2.value == b.value
    b3 = MovingAverageBaseline(0.5)
    b3.load_state_dict(MovingAverageBaseline(0.5).state_dict())
    assert b3.value is None


def test_sequence_advantages():
    scores = t([1.0, 2.0])
    kl = t([[0.1, 0.2, 0.3], [0.5, -0.1, 9.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    # row 0: 1 - 0.5*(0.1+0.2+0.3) - 0.25 = 1 - 0.3 - 0.25 = 0.45
    # row 1: 2 - 0.5*(0.5-0.1) - 0.25 = 2 - 0.2 - 0.25 = 1.55 (the 9.0 is padding)
    close(sequence_advantages(scores, kl, mask, 0.5, 0.25), [0.45, 1.55])


def test_reinforce_loss_2x2():
    logp = t([[-1.0, -2.0], [-0.5, NAN]]).requires_grad_(True)
    adv = t([2.0, -1.0])
    mask = t([[1, 1], [1, 0]])
    # sum A*logp over real tokens: 2*(-1) + 2*(-2) + (-1)*(-0.5) = -2 - 4 + 0.5 = -5.5
    # loss = -(-5.5)/3 = 1.8333333
    loss = reinforce_loss(logp, adv, mask)
    close(loss, 1.8333333)
    loss.backward()
    # d loss/d logp = -A/3: row 0: -2/3 = -0.6666667 ; row 1: 1/3, padding 0
    close(logp.grad, [[-0.6666667, -0.6666667], [0.3333333, 0.0]])


# --- mask dtypes and bfloat16 ----------------------------------------------------------------


def _random_case(seed=0, b=3, r=6):
    g = torch.Generator().manual_seed(seed)
    x = {k: torch.randn(b, r, generator=g) for k in ("a", "b", "c", "d")}
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])[:b, :r]
    return x, mask


def _all_outputs(x, mask):
    scores = x["d"][:, 0]
    out = [
        masked_sum(x["a"], mask),
        masked_mean(x["a"], mask, dim=1),
        masked_var(x["a"], mask),
        masked_whiten(x["a"], mask),
        *per_token_rewards(scores, x["a"], x["b"], mask, 0.1, "k3"),
        *gae_advantages(x["a"], x["b"], mask, 0.99, 0.95),
        ppo_policy_loss(x["a"] * 0.1, x["b"] * 0.1, x["c"], mask, 0.2)[0],
        ppo_value_loss(x["a"], x["b"], x["c"], mask, 0.2)[0],
        sequence_advantages(scores, x["a"], mask, 0.1, 0.5),
        reinforce_loss(x["a"], scores, mask),
        torch.tensor(explained_variance(x["a"], x["b"], mask)),
    ]
    return out


def test_bool_and_float_masks_agree():
    x, mask = _random_case()
    for a, b in zip(_all_outputs(x, mask.bool()), _all_outputs(x, mask.float()), strict=True):
        assert torch.equal(a, b)


def test_bfloat16_inputs_work_and_are_close():
    x, mask = _random_case(seed=3)
    x_bf = {k: v.bfloat16() for k, v in x.items()}
    # Compare against float32 runs on the same (rounded) values, and against the originals.
    x_rounded = {k: v.float() for k, v in x_bf.items()}
    for a, b, c in zip(
        _all_outputs(x_bf, mask.float()),
        _all_outputs(x_rounded, mask.float()),
        _all_outputs(x, mask.float()),
        strict=True,
    ):
        assert a.dtype == torch.float32
        assert torch.allclose(a, b, atol=1e-5)
        assert torch.allclose(a, c, atol=5e-2, rtol=5e-2)
    logits = torch.randn(2, 4, 50, generator=torch.Generator().manual_seed(4))
    tokens = torch.randint(0, 50, (2, 4))
    lp_bf = logprobs_from_logits(logits.bfloat16(), tokens)
    assert lp_bf.dtype == torch.float32
    close(lp_bf, logprobs_from_logits(logits, tokens), atol=5e-2)
    close(entropy_from_logits(logits.bfloat16()), entropy_from_logits(logits), atol=5e-2)
