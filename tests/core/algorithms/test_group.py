"""Hand-checked tests for the group-based algorithm math (core.algorithms.group).

Expected numbers are literals worked out by hand in the comments next to them.
"""

from __future__ import annotations

import math

import pytest
import torch

from core.algorithms.group import (
    group_advantages,
    grpo_policy_loss,
    rloo_advantages,
    rloo_loss,
)
from tests.core.helpers import NAN, close, t

# --- grouping --------------------------------------------------------------------------------


def test_batch_not_a_multiple_of_group_size_raises():
    with pytest.raises(ValueError, match="not a multiple of group_size 2"):
        rloo_advantages(t([1.0, 2.0, 3.0]), 2)
    with pytest.raises(ValueError, match="not a multiple of group_size 4"):
        group_advantages(t([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 4)
    with pytest.raises(ValueError, match="positive int"):
        group_advantages(t([1.0, 2.0]), 0)


# --- RLOO ------------------------------------------------------------------------------------


def test_rloo_advantages_group_of_three():
    # r = [1, 2, 6]
    #   A0 = 1 - (2 + 6)/2 = 1 - 4   = -3
    #   A1 = 2 - (1 + 6)/2 = 2 - 3.5 = -1.5
    #   A2 = 6 - (1 + 2)/2 = 6 - 1.5 =  4.5
    adv = rloo_advantages(t([1.0, 2.0, 6.0]), 3)
    assert adv.dtype == torch.float32
    close(adv, [-3.0, -1.5, 4.5])


def test_rloo_advantages_two_groups_prompt_major():
    # Groups of 3: [1, 2, 6] (above) and [0, 0, 3]:
    #   0 - (0 + 3)/2 = -1.5 (twice) ; 3 - (0 + 0)/2 = 3
    close(rloo_advantages(t([1.0, 2.0, 6.0, 0.0, 0.0, 3.0]), 3), [-3, -1.5, 4.5, -1.5, -1.5, 3])
    # Groups of 2: [1, 0] -> 1 - 0 = 1, 0 - 1 = -1 ; [3, 5] -> 3 - 5 = -2, 5 - 3 = 2
    close(rloo_advantages(t([1.0, 0.0, 3.0, 5.0]), 2), [1.0, -1.0, -2.0, 2.0])


def test_rloo_needs_two_completions_per_prompt():
    with pytest.raises(ValueError, match="group_size >= 2"):
        rloo_advantages(t([1.0, 2.0]), 1)


def test_rloo_loss_value_and_gradient():
    # Row 2 has an empty mask; NaN sits in every padding position.
    logp = t([[-1.0, -2.0, -0.5], [-0.5, NAN, NAN], [NAN, NAN, NAN]]).requires_grad_(True)
    mask = t([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    adv = t([2.0, -1.0, 5.0])
    # sum_t logp per row: -1 - 2 - 0.5 = -3.5 ; -0.5 ; 0 (empty)
    # A * sum: 2*(-3.5) = -7 ; (-1)*(-0.5) = 0.5 ; 5*0 = 0
    # loss = -(-7 + 0.5 + 0)/3 = 6.5/3 = 2.1666667
    loss = rloo_loss(logp, adv, mask)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    close(loss, 2.1666667)
    loss.backward()
    # d loss / d logp_bt = -A_b / B at real tokens: -2/3 = -0.6666667 ; 1/3 = 0.3333333 ; else 0
    close(logp.grad, [[-0.6666667, -0.6666667, -0.6666667], [0.3333333, 0, 0], [0, 0, 0]])


# --- GRPO advantages -------------------------------------------------------------------------


def test_group_advantages_std_scaled():
    # Group [0, 2, 4]: mean 2, deviations -2, 0, 2, squares 4 + 0 + 4 = 8,
    #   unbiased var 8/2 = 4, std 2  -> with eps 0: -2/2 = -1, 0, 1
    # Group [3, 5]: mean 4, deviations -1, 1, var (1 + 1)/1 = 2, std 1.4142136
    #   -> -1/1.4142136 = -0.7071068, 0.7071068
    adv, frac = group_advantages(t([0.0, 2.0, 4.0]), 3, eps=0.0)
    close(adv, [-1.0, 0.0, 1.0])
    assert frac == 0.0
    adv, _ = group_advantages(t([3.0, 5.0]), 2, eps=0.0)
    close(adv, [-0.7071068, 0.7071068])
    # Default eps 1e-4: 2/(2 + 0.0001) = 2/2.0001 = 0.9999500
    adv, _ = group_advantages(t([0.0, 2.0, 4.0]), 3)
    close(adv, [-0.99995, 0.0, 0.99995])


def test_group_advantages_mean_only():
    # scale_by_std=False (Dr. GRPO): only the group mean is removed.
    # [0, 2, 4] - 2 = [-2, 0, 2] ; [1, 1, 7] - 3 = [-2, -2, 4]
    adv, frac = group_advantages(t([0.0, 2.0, 4.0, 1.0, 1.0, 7.0]), 3, scale_by_std=False)
    close(adv, [-2.0, 0.0, 2.0, -2.0, -2.0, 4.0])
    assert frac == 0.0


def test_frac_zero_std_one_constant_group_of_two():
    # Groups [0, 2, 4] and [1, 1, 1]: the second has std 0 -> 1 of 2 groups = 0.5.
    # Its advantages are 0 ; the first group's are -2/2.0001, 0, 2/2.0001 as above.
    adv, frac = group_advantages(t([0.0, 2.0, 4.0, 1.0, 1.0, 1.0]), 3)
    assert frac == 0.5
    close(adv, [-0.99995, 0.0, 0.99995, 0.0, 0.0, 0.0])
    # In float32, 0.9 - mean(0.9, 0.9, 0.9) rounds to 6e-8, not 0, and 6e-8 / eps would be an
    # advantage of 6e-4; a constant group must still give exactly 0, with or without scaling.
    for scale in (True, False):
        adv, frac = group_advantages(t([0.9, 0.9, 0.9, 0.3, 0.3, 0.3]), 3, scale_by_std=scale)
        assert frac == 1.0
        assert torch.equal(adv, torch.zeros(6))


# --- GRPO loss -------------------------------------------------------------------------------


def _clip_case():
    # eps = 0.2; old log-probs all -1; NaN in every padding position (row 1, col 2).
    # row 0 (A = +1): ratios 1, 1.5, 0.5 ; row 1 (A = -1): ratios 1.5, 0.5, pad
    old = t([[-1.0, -1.0, -1.0], [-1.0, -1.0, NAN]])
    logp = t(
        [
            [-1.0, -1.0 + math.log(1.5), -1.0 + math.log(0.5)],
            [-1.0 + math.log(1.5), -1.0 + math.log(0.5), NAN],
        ]
    )
    adv = t([1.0, -1.0])
    mask = t([[1, 1, 1], [1, 1, 0]])
    return logp, old, adv, mask


def test_grpo_loss_clipped_both_normalisations():
    # per token max(-A*r, -A*clip(r, .8, 1.2)):
    #   row 0, A=+1:  r=1:   max(-1, -1)      = -1    not clipped
    #                 r=1.5: max(-1.5, -1.2)  = -1.2  clipped
    #                 r=0.5: max(-0.5, -0.8)  = -0.5  not clipped
    #   row 1, A=-1:  r=1.5: max(1.5, 1.2)    = 1.5   not clipped
    #                 r=0.5: max(0.5, 0.8)    = 0.8   clipped
    # sequence: row means (-1 - 1.2 - 0.5)/3 = -0.9 and (1.5 + 0.8)/2 = 1.15
    #           -> (-0.9 + 1.15)/2 = 0.125
    # token:    (-1 - 1.2 - 0.5 + 1.5 + 0.8)/5 = -0.4/5 = -0.08
    logp, old, adv, mask = _clip_case()
    ref = logp.clone()  # policy == reference: k3 = 0, the KL term adds nothing
    for normalize, expected, grad in (
        # d/dlogp = -A*r * weight at unclipped tokens, 0 at clipped ones and padding;
        # sequence weight 1/(2*3) row 0, 1/(2*2) row 1:
        #   -1/6 = -0.1666667 ; -0.5/6 = -0.0833333 ; 1.5/4 = 0.375
        ("sequence", 0.125, [[-0.1666667, 0.0, -0.0833333], [0.375, 0.0, 0.0]]),
        # token weight 1/5: -1/5 = -0.2 ; -0.5/5 = -0.1 ; 1.5/5 = 0.3
        ("token", -0.08, [[-0.2, 0.0, -0.1], [0.3, 0.0, 0.0]]),
    ):
        lp = logp.clone().requires_grad_(True)
        loss, stats = grpo_policy_loss(
            lp, old, ref, adv, mask, clip_range=0.2, kl_coef=0.5, normalize=normalize
        )
        assert loss.dtype == torch.float32 and loss.dim() == 0
        close(loss, expected)
        close(stats["clipfrac"], 0.4)  # 2 of 5 real tokens
        # approx_kl = mean((r-1) - ln r): r=1: 0 ; r=1.5: 0.5 - 0.4054651 = 0.0945349 (twice) ;
        #   r=0.5: -0.5 + 0.6931472 = 0.1931472 (twice) -> 0.5753642/5 = 0.1150728
        close(stats["approx_kl"], 0.1150728)
        close(stats["kl"], 0.0)
        assert not any(torch.as_tensor(v).requires_grad for v in stats.values())
        loss.backward()
        assert torch.isfinite(lp.grad).all()
        close(lp.grad, grad)


def test_grpo_loss_unclipped():
    # clip_range 10: clip(r, -9, 11) leaves every ratio alone, so the loss is mean(-A*r):
    #   -1, -1.5, -0.5 | 1.5, 0.5
    # token:    (-1 - 1.5 - 0.5 + 1.5 + 0.5)/5 = -1/5 = -0.2
    # sequence: (-3/3 + 2/2)/2 = (-1 + 1)/2 = 0
    logp, old, adv, mask = _clip_case()
    loss, stats = grpo_policy_loss(logp, old, logp, adv, mask, 10.0, 0.0, normalize="token")
    close(loss, -0.2)
    close(stats["clipfrac"], 0.0)
    loss, _ = grpo_policy_loss(logp, old, logp, adv, mask, 10.0, 0.0, normalize="sequence")
    close(loss, 0.0)


def test_grpo_loss_adds_kl_term():
    # Same clipped case with ref = logp - 1 at real tokens: u = ref - logp = -1,
    #   k3 = e^-1 + 1 - 1 = 0.3678794 at every real token ; kl_coef 0.1 -> +0.0367879
    # token:    -0.08 + 0.0367879 = -0.0432121
    # sequence: both row means of k3 are 0.3678794 -> 0.125 + 0.0367879 = 0.1617879
    logp, old, adv, mask = _clip_case()
    ref = logp - 1.0
    loss, stats = grpo_policy_loss(logp, old, ref, adv, mask, 0.2, 0.1, normalize="token")
    close(loss, -0.0432121)
    close(stats["kl"], 0.3678794)
    loss, _ = grpo_policy_loss(logp, old, ref, adv, mask, 0.2, 0.1, normalize="sequence")
    close(loss, 0.1617879)


def _kl_case():
    # u = ref - logp: row 0: -2 - (-1) = -1 ; -1 - (-2) = 1 ; 0 | row 1: ln 2 ; 0 | pad
    logp = t([[-1.0, -2.0, -0.5], [-1.0, -1.0, NAN]])
    ref = t([[-2.0, -1.0, -0.5], [-1.0 + math.log(2.0), -1.0, NAN]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    return logp, ref, mask


def test_grpo_kl_term_value_and_gradient():
    # A = 0, so the surrogate is 0 everywhere and the loss is kl_coef (0.5) * normalised k3.
    # k3 = e^u - u - 1: u=-1: 0.3678794 + 1 - 1 = 0.3678794 ; u=1: 2.7182818 - 2 = 0.7182818 ;
    #   u=ln 2: 2 - 0.6931472 - 1 = 0.3068528 ; u=0: 0
    # token:    (0.3678794 + 0.7182818 + 0.3068528)/5 = 1.3930140/5 = 0.2786028
    #           loss 0.5 * 0.2786028 = 0.1393014
    # sequence: row 0 (0.3678794 + 0.7182818)/3 = 1.0861612/3 = 0.3620537 ;
    #           row 1 0.3068528/2 = 0.1534264 ; (0.3620537 + 0.1534264)/2 = 0.2577401
    #           loss 0.5 * 0.2577401 = 0.1288700
    # d k3 / d logp = 1 - e^u: u=-1: 0.6321206 ; u=1: -1.7182818 ; u=ln 2: -1 ; u=0: 0
    #   token grads 0.5/5 = 0.1 * that: 0.0632121, -0.1718282, 0 | -0.1, 0
    #   sequence grads 0.5/6 row 0: 0.6321206/12 = 0.0526767, -1.7182818/12 = -0.1431902 ;
    #                  0.5/4 row 1: -1/8 = -0.125
    logp, ref, mask = _kl_case()
    adv = t([0.0, 0.0])
    for normalize, expected, grad in (
        ("token", 0.1393014, [[0.0632121, -0.1718282, 0.0], [-0.1, 0.0, 0.0]]),
        ("sequence", 0.1288700, [[0.0526767, -0.1431902, 0.0], [-0.125, 0.0, 0.0]]),
    ):
        lp = logp.clone().requires_grad_(True)
        loss, stats = grpo_policy_loss(lp, logp, ref, adv, mask, 0.2, 0.5, normalize=normalize)
        close(loss, expected)
        close(stats["kl"], 0.2786028)  # always the token mean of k3
        close(stats["approx_kl"], 0.0)  # old == new
        loss.backward()
        close(lp.grad, grad)


def test_grpo_kl_gradient_pulls_logprobs_towards_reference():
    logp, ref, mask = _kl_case()
    lp = logp.clone().requires_grad_(True)
    loss, stats = grpo_policy_loss(lp, logp, ref, t([0.0, 0.0]), mask, 0.2, 1.0, "token")
    loss.backward()
    m = mask.bool()
    gap = torch.where(m, logp - ref, 0.0)  # 1, -1, 0 | -ln 2, 0
    # The gradient has the sign of logp - ref, so a descent step moves logp towards ref ...
    assert torch.equal(torch.sign(lp.grad), torch.sign(gap))
    with torch.no_grad():
        stepped = torch.where(m, logp - 0.1 * lp.grad, logp)
    new_gap = torch.where(m, stepped - ref, 0.0)
    moved = gap != 0
    assert (new_gap[moved].abs() < gap[moved].abs()).all()
    # ... and lowers the KL to the reference.
    _, after = grpo_policy_loss(stepped, logp, ref, t([0.0, 0.0]), mask, 0.2, 1.0, "token")
    assert float(after["kl"]) < float(stats["kl"])


def test_grpo_loss_empty_row():
    # A third row with no real token (all NaN): sequence mode divides by B = 3 and the row
    # contributes 0: (-0.9 + 1.15 + 0)/3 = 0.25/3 = 0.0833333 ; token mode is unchanged, -0.08.
    logp, old, adv, mask = _clip_case()
    pad = torch.full((1, 3), NAN)
    logp, old = torch.cat([logp, pad]), torch.cat([old, pad])
    adv, mask = torch.cat([adv, t([7.0])]), torch.cat([mask, torch.zeros(1, 3)])
    loss, stats = grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.1, "sequence")
    close(loss, 0.0833333)
    close(stats["clipfrac"], 0.4)
    loss, _ = grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.1, "token")
    close(loss, -0.08)


def test_grpo_loss_rejects_unknown_normalisation_and_bad_advantages():
    logp, old, adv, mask = _clip_case()
    with pytest.raises(ValueError, match="'sequence', 'token'"):
        grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.0, normalize="batch")
    with pytest.raises(ValueError, match="one value per sequence"):
        grpo_policy_loss(logp, old, logp, t([1.0, 2.0, 3.0]), mask, 0.2, 0.0)


def test_bool_float_masks_agree_and_bfloat16_gives_float32():
    logp, old, adv, mask = _clip_case()
    ref = logp - 0.5
    for normalize in ("sequence", "token"):
        a = grpo_policy_loss(logp, old, ref, adv, mask.bool(), 0.2, 0.1, normalize)[0]
        b = grpo_policy_loss(logp, old, ref, adv, mask, 0.2, 0.1, normalize)[0]
        assert torch.equal(a, b)
        c = grpo_policy_loss(logp.bfloat16(), old.bfloat16(), ref.bfloat16(), adv, mask, 0.2, 0.1)
        assert c[0].dtype == torch.float32 and torch.isfinite(c[0])
    assert torch.equal(rloo_loss(logp, adv, mask.bool()), rloo_loss(logp, adv, mask))
    assert rloo_advantages(t([1.0, 2.0]).bfloat16(), 2).dtype == torch.float32
    assert group_advantages(t([1.0, 2.0]).bfloat16(), 2)[0].dtype == torch.float32


# --- the GRPO family: TRL's loss_type, clip-higher, GSPO, batch scaling ----------------------


def test_grpo_loss_sum_over_a_divisor_dr_grpo_and_dapo():
    # Clipped case per token: -1, -1.2, -0.5 | 1.5, 0.8 -> sum -0.4.
    # dr_grpo: rows x max_new_tokens = 2 x 3 = 6 -> -0.4 / 6 = -0.0666667
    # dapo: the step's tokens over every process, say 10 -> -0.04
    logp, old, adv, mask = _clip_case()
    for divisor, expected in ((6.0, -0.0666667), (10.0, -0.04)):
        loss, _ = grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.0, "sum", divisor=divisor)
        close(loss, expected)
    with pytest.raises(ValueError, match="needs a divisor"):
        grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.0, "sum")


def test_grpo_loss_clip_higher():
    # eps_low 0.2, eps_high 0.6: row 0 (A=+1) r=1.5 is no longer clipped: max(-1.5, -1.5) =
    # -1.5; r=0.5: max(-0.5, -0.8) = -0.5; row 1 (A=-1): r=1.5: 1.5; r=0.5: max(0.5, 0.8) = 0.8
    # token: (-1 - 1.5 - 0.5 + 1.5 + 0.8) / 5 = -0.7 / 5 = -0.14; clipped only at row 1's 0.5
    logp, old, adv, mask = _clip_case()
    loss, stats = grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.0, "token", clip_high=0.6)
    close(loss, -0.14)
    close(stats["clipfrac"], 0.2)


def test_grpo_loss_sequence_level_ratio_gspo():
    # One ratio per row: exp(mean log ratio). Row 0: (0 + ln 1.5 + ln 0.5) / 3 = ln(0.75) / 3
    #   -> s0 = 0.75^(1/3) = 0.9085603 ; row 1: ln(0.75) / 2 -> s1 = 0.75^(1/2) = 0.8660254.
    # Both inside [0.8, 1.2]: row 0 (A=+1) -s0 at each token, row 1 (A=-1) +s1.
    # token:    (3 x -0.9085603 + 2 x 0.8660254) / 5 = -0.9936301 / 5 = -0.1987260
    # sequence: (-0.9085603 + 0.8660254) / 2 = -0.0212675
    logp, old, adv, mask = _clip_case()
    lp = logp.clone().requires_grad_(True)
    loss, _ = grpo_policy_loss(lp, old, logp, adv, mask, 0.2, 0.0, "token", level="sequence")
    close(loss, -0.1987260)
    # d/dlogp_t: the 3 (2) tokens of a row share its ratio, each through 1/3 (1/2) of the
    # mean: row 0: (1/5) x 3 x -s0 / 3 = -s0 / 5 = -0.1817121 ; row 1: s1 / 5 = 0.1732051
    loss.backward()
    close(lp.grad, [[-0.1817121] * 3, [0.1732051, 0.1732051, 0.0]])
    loss, _ = grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.0, "sequence", level="sequence")
    close(loss, -0.0212675)


def test_group_advantages_scaled_by_the_batch_std():
    # Groups [0, 2, 4] (mean 2) and [1, 1, 7] (mean 3): centred -2, 0, 2 | -2, -2, 4;
    # divided by the batch's std 2 (given): -1, 0, 1 | -1, -1, 2
    adv, _ = group_advantages(
        t([0.0, 2.0, 4.0, 1.0, 1.0, 7.0]), 3, scale="batch", batch_std=2.0, eps=0.0
    )
    close(adv, [-1.0, 0.0, 1.0, -1.0, -1.0, 2.0])
    # Without a given std, this batch's own (unbiased): sqrt(33.5 / 5) = 2.5884358
    adv, _ = group_advantages(t([0.0, 2.0, 4.0, 1.0, 1.0, 7.0]), 3, scale="batch", eps=0.0)
    close(adv, [x / 2.5884358 for x in (-2.0, 0.0, 2.0, -2.0, -2.0, 4.0)])
    none, _ = group_advantages(t([0.0, 2.0, 4.0]), 3, scale="none")
    close(none, [-2.0, 0.0, 2.0])


def test_high_entropy_mask_keeps_the_forking_tokens():
    from core.algorithms.group import high_entropy_mask

    # Real entropies 0.1, 0.9, 0.5, 0.7 (row 1's last token is padding, entropy 9 ignored).
    # share 0.5: the 0.5 quantile of [0.1, 0.5, 0.7, 0.9] is 0.6 (linear) -> keep 0.9, 0.7.
    ent = t([[0.1, 0.9, 0.5], [0.7, 9.0, 9.0]])
    mask = t([[1, 1, 1], [1, 0, 0]])
    keep = high_entropy_mask(ent, mask, 0.5)
    assert keep.tolist() == [[False, True, False], [True, False, False]]
    assert high_entropy_mask(ent, mask, 1.0).tolist() == mask.bool().tolist()


def test_grpo_policy_mask_drops_the_policy_term_only():
    # Clipped case per token: -1, -1.2, -0.5 | 1.5, 0.8. Keep only (0, 1) and (1, 0):
    # token normalisation still over all 5 real tokens: (-1.2 + 1.5) / 5 = 0.06;
    # with ref = logp - 1 and kl_coef 0.1 the k3 term adds 0.0367879 at every real token.
    logp, old, adv, mask = _clip_case()
    keep = torch.tensor([[False, True, False], [True, False, False]])
    loss, _ = grpo_policy_loss(logp, old, logp, adv, mask, 0.2, 0.0, "token", policy_mask=keep)
    close(loss, 0.06)
    loss, _ = grpo_policy_loss(
        logp, old, logp - 1.0, adv, mask, 0.2, 0.1, "token", policy_mask=keep
    )
    close(loss, 0.06 + 0.0367879)
