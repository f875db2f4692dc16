"""Hand-checked tests for the ILQL heads and tensor math (core.algorithms.ilql).

Expected numbers are literals worked out by hand in the comments next to them.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core.algorithms.ilql import (
    AWAC_WEIGHT_MAX,
    ILQLHeads,
    IlqlLossWeights,
    expectile_loss,
    ilql_decode_logits,
    ilql_losses,
    lambda_returns,
    polyak_update,
)
from tests.core.helpers import NAN, close, t

LN2 = math.log(2.0)
LN3 = math.log(3.0)


def _one_hot_q(taken: list[list[float]], actions: list[list[int]], vocab: int, fill=9.0):
    """[B, R, vocab] holding taken[b][r] at actions[b][r] and `fill` elsewhere."""
    q = torch.full((len(taken), len(taken[0]), vocab), fill)
    for b, row in enumerate(taken):
        for r, value in enumerate(row):
            q[b, r, max(actions[b][r], 0)] = value
    return q


# --- expectile loss --------------------------------------------------------------------------


def test_expectile_loss_tau_0_7():
    diff = t([2.0, -2.0, 0.5, -0.5, 0.0])
    # weights |0.7 - 1(diff < 0)|: 0.7, 0.3, 0.7, 0.3, 0.7
    # 0.7*4 = 2.8 ; 0.3*4 = 1.2 ; 0.7*0.25 = 0.175 ; 0.3*0.25 = 0.075 ; 0.7*0 = 0
    out = expectile_loss(diff, 0.7)
    assert out.dtype == torch.float32
    close(out, [2.8, 1.2, 0.175, 0.075, 0.0])
    # tau = 0.5 is half the squared error either way: 0.5*4 = 2
    close(expectile_loss(t([2.0, -2.0]), 0.5), [2.0, 2.0])


# --- Polyak update ---------------------------------------------------------------------------


def _scalar_module(w: float) -> nn.Module:
    mod = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        mod.weight.fill_(w)
    return mod


def test_polyak_update_one_parameter():
    target, source = _scalar_module(2.0), _scalar_module(12.0)
    polyak_update(target, source, 0.1)
    # 0.1*12 + 0.9*2 = 1.2 + 1.8 = 3.0
    close(target.weight, [[3.0]])
    close(source.weight, [[12.0]])  # the source is never touched
    polyak_update(target, source, 0.1)
    # 0.1*12 + 0.9*3 = 1.2 + 2.7 = 3.9
    close(target.weight, [[3.9]], atol=1e-5)
    polyak_update(target, source, 0.0)
    close(target.weight, [[3.9]], atol=1e-5)  # alpha 0 keeps the target
    # alpha 1 copies bit-exactly, even from a value with no short binary form.
    source2 = _scalar_module(0.1234567)
    polyak_update(target, source2, 1.0)
    assert torch.equal(target.weight, source2.weight)
    with pytest.raises(ValueError):
        polyak_update(target, source, 1.5)
    with pytest.raises(ValueError):
        polyak_update(target, nn.Linear(1, 1), 0.5)  # source has an extra bias


def test_heads_sync_target():
    torch.manual_seed(0)
    heads = ILQLHeads(4, 6)
    with torch.no_grad():
        for p in heads.q_heads.parameters():
            p.add_(1.0)
    before = [p.clone() for p in heads.target_q_heads.parameters()]
    heads.sync_target(0.25)
    for b, tp, qp in zip(before, heads.target_q_heads.parameters(), heads.q_heads.parameters()):
        close(tp, 0.25 * qp + 0.75 * b, atol=1e-6)
    heads.sync_target(1.0)
    for tp, qp in zip(heads.target_q_heads.parameters(), heads.q_heads.parameters()):
        assert torch.equal(tp, qp)
        assert not tp.requires_grad


# --- decoding --------------------------------------------------------------------------------


def test_decode_logits_three_token_vocab():
    logits = t([[1.0, 2.0, 3.0]])
    q1 = t([[0.5, -1.0, 2.0]])
    q2 = t([[1.0, -2.0, 0.0]])
    v = t([0.5])
    # min(q1, q2) = [0.5, -2.0, 0.0] ; minus v = [0.0, -2.5, -0.5] ; times beta 2 = [0, -5, -1]
    # adjusted = [1 + 0, 2 - 5, 3 - 1] = [1, -3, 2]
    out = ilql_decode_logits(logits, (q1, q2), v, beta=2.0)
    assert out.dtype == torch.float32
    close(out, [[1.0, -3.0, 2.0]])
    # Same numbers with a time axis [B=1, T=1, V=3] and bfloat16 inputs.
    bf = torch.bfloat16
    out3 = ilql_decode_logits(logits[None].to(bf), (q1[None].to(bf), q2[None].to(bf)), v[None], 2.0)
    close(out3, [[[1.0, -3.0, 2.0]]])
    # beta 0 gives back the language model's logits.
    close(ilql_decode_logits(logits, (q1, q2), v, beta=0.0), [[1.0, 2.0, 3.0]])


# --- TD loss ---------------------------------------------------------------------------------


def _td_case():
    # Row 0: 3 real tokens, then padding holding 50 in v (terminal handling must hide it).
    # Row 1: 1 real token, padding holding NaN everywhere and action -100.
    actions = [[0, 1, 0, 0], [1, -100, -100, -100]]
    taken = [[0.5, 0.3, 0.8, NAN], [0.7, NAN, NAN, NAN]]
    q = _one_hot_q(taken, actions, vocab=2)
    q[1, 1:] = NAN
    q[0, 3] = NAN
    rewards = t([[0.0, 0.0, 1.0, NAN], [-1.0, NAN, NAN, NAN]])
    v = t([[0.2, 0.4, 0.6, 50.0], [0.3, NAN, NAN, NAN]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0]])
    return q, v, torch.tensor(actions), rewards, mask


def test_td_loss_three_token_row_terminal_and_padding():
    q, v, actions, rewards, mask = _td_case()
    # gamma 0.99; V(s_{t+1}) row 0 = [0.4, 0.6, 0 (terminal, not the 50)] ; row 1 = [0]
    # targets row 0: 0 + 0.99*0.4 = 0.396 ; 0 + 0.99*0.6 = 0.594 ; 1 + 0 = 1.0
    # target row 1: -1 + 0 = -1
    # errors: 0.5-0.396 = 0.104 -> 0.010816 ; 0.3-0.594 = -0.294 -> 0.086436 ;
    #         0.8-1.0 = -0.2 -> 0.04 ; 0.7-(-1) = 1.7 -> 2.89
    # mean over 4 real tokens: (0.010816 + 0.086436 + 0.04 + 2.89)/4 = 3.027252/4 = 0.756813
    _, stats = ilql_losses(
        (q,), (q,), v, torch.zeros(2, 4, 2), actions, rewards, mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=1.0, awac_scale=1.0),
    )  # fmt: skip
    assert stats["loss/q"] == pytest.approx(0.756813, abs=1e-6)
    assert all(math.isfinite(x) for x in stats.values()), stats
    # Two identical Q heads: the TD term counts each head once -> 2 * 0.756813 = 1.513626
    _, stats2 = ilql_losses(
        (q, q.clone()), (q, q), v, torch.zeros(2, 4, 2), actions, rewards, mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=0.0),
    )  # fmt: skip
    assert stats2["loss/q"] == pytest.approx(1.513626, abs=1e-6)
    # q/mean = (0.5 + 0.3 + 0.8 + 0.7)/4 = 0.575 ; v/mean = (0.2 + 0.4 + 0.6 + 0.3)/4 = 0.375
    assert stats2["q/mean"] == pytest.approx(0.575, abs=1e-6)
    assert stats2["v/mean"] == pytest.approx(0.375, abs=1e-6)
    with pytest.raises(ValueError, match="target Q heads"):
        ilql_losses(
            (q, q), (q,), v, torch.zeros(2, 4, 2), actions, rewards, mask,
            IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=0.0),
        )  # fmt: skip


def test_td_gradients_stay_out_of_padding_and_target():
    q, v, actions, rewards, mask = _td_case()
    q = torch.nan_to_num(q, nan=1e4).requires_grad_(True)  # finite garbage in [B, R, V] padding
    v = v.clone().requires_grad_(True)  # NaN in per-token padding
    # Only the TD term sees q (cql/awac off); target heads get a separate tensor.
    target = torch.zeros(2, 4, 2)
    loss, stats = ilql_losses(
        (q,), (target,), v, torch.zeros(2, 4, 2), actions, rewards, mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=0.0),
    )  # fmt: skip
    assert stats["loss/q"] == pytest.approx(0.756813, abs=1e-6)
    loss.backward()
    # d/dQ of (Q - y)^2 / 4 = (Q - y)/2: 0.104/2 = 0.052 ; -0.294/2 = -0.147 ; -0.2/2 = -0.1 ;
    # 1.7/2 = 0.85 — only at the taken actions of real tokens.
    expected = torch.zeros(2, 4, 2)
    expected[0, 0, 0], expected[0, 1, 1], expected[0, 2, 0] = 0.052, -0.147, -0.1
    expected[1, 0, 1] = 0.85
    close(q.grad, expected)
    # v gets gradient only from the V loss (the TD target is detached):
    # target Q = 0 everywhere; diff = 0 - v < 0 -> weight 0.3; d/dv of 0.3*v^2/4 = 0.15*v
    # 0.15*[0.2, 0.4, 0.6] = [0.03, 0.06, 0.09] ; 0.15*0.3 = 0.045 ; padding 0
    close(v.grad, [[0.03, 0.06, 0.09, 0.0], [0.045, 0.0, 0.0, 0.0]])


def test_lambda_returns_three_token_row_terminal_and_padding():
    # Row 0: rewards [0, 0, 1], V(s_{t+1}) = [0.4, 0.6, 0 (terminal)], then padding holding NaN.
    # Row 1: one real token, reward -1.
    rewards = t([[0.0, 0.0, 1.0, NAN], [-1.0, NAN, NAN, NAN]])
    next_v = t([[0.4, 0.6, 0.0, NAN], [0.0, NAN, NAN, NAN]])
    mask = t([[1, 1, 1, 0], [1, 0, 0, 0]])
    # gamma 0.5, lam 0.5, backwards from the last real token (G after it is 0):
    #   G2 = 1 + 0.5*(0.5*0 + 0.5*0) = 1 ; G1 = 0 + 0.5*(0.5*0.6 + 0.5*1) = 0.4 ;
    #   G0 = 0 + 0.5*(0.5*0.4 + 0.5*0.4) = 0.2 ; row 1: -1 + 0 = -1 ; padding 0
    close(lambda_returns(rewards, next_v, mask, 0.5, 0.5), [[0.2, 0.4, 1.0, 0], [-1.0, 0, 0, 0]])
    # lam 0: one-step r + gamma V(s'): [0.5*0.4, 0.5*0.6, 1] = [0.2, 0.3, 1.0]
    close(lambda_returns(rewards, next_v, mask, 0.5, 0.0), [[0.2, 0.3, 1.0, 0], [-1.0, 0, 0, 0]])
    # lam 1: discounted Monte Carlo return, V unused: [0.25, 0.5, 1.0]
    close(lambda_returns(rewards, next_v, mask, 0.5, 1.0), [[0.25, 0.5, 1.0, 0], [-1.0, 0, 0, 0]])


def test_td_loss_with_lambda_1_regresses_on_the_discounted_return():
    q, v, actions, rewards, mask = _td_case()
    # gamma 0.99, lam 1: targets row 0 = [0.99^2, 0.99, 1] = [0.9801, 0.99, 1.0] ; row 1 = [-1]
    # errors: 0.5-0.9801 = -0.4801 -> 0.23049601 ; 0.3-0.99 = -0.69 -> 0.4761 ;
    #         0.8-1.0 = -0.2 -> 0.04 ; 0.7-(-1) = 1.7 -> 2.89
    # mean over 4 real tokens: 3.63659601/4 = 0.909149
    _, stats = ilql_losses(
        (q,), (q,), v, torch.zeros(2, 4, 2), actions, rewards, mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=0.0, lam=1.0),
    )  # fmt: skip
    assert stats["loss/q"] == pytest.approx(0.909149, abs=1e-6)
    # lam 0 is the one-step target of the test above.
    _, stats0 = ilql_losses(
        (q,), (q,), v, torch.zeros(2, 4, 2), actions, rewards, mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=0.0, lam=0.0),
    )  # fmt: skip
    assert stats0["loss/q"] == pytest.approx(0.756813, abs=1e-6)


# --- V loss: min over the target heads -------------------------------------------------------


def test_v_loss_uses_min_over_target_heads():
    actions = torch.tensor([[0, 2]])
    mask = t([[1, 1]])
    tq1 = _one_hot_q([[1.0, -1.0]], [[0, 2]], vocab=3, fill=-7.0).requires_grad_(True)
    tq2 = _one_hot_q([[0.5, 2.0]], [[0, 2]], vocab=3, fill=-7.0).requires_grad_(True)
    q = torch.zeros(1, 2, 3)
    v = t([[0.0, 0.0]]).requires_grad_(True)
    loss, stats = ilql_losses(
        (q, q), (tq1, tq2), v, torch.zeros(1, 2, 3), actions, t([[0.0, 0.0]]), mask,
        IlqlLossWeights(gamma=1.0, tau=0.7, cql_scale=0.0, awac_scale=0.0),
    )  # fmt: skip
    # min(tq1, tq2) at the taken actions = [min(1, 0.5), min(-1, 2)] = [0.5, -1.0]
    # diff = target - v = [0.5, -1.0] -> 0.7*0.25 = 0.175 ; 0.3*1 = 0.3 ; mean 0.475/2 = 0.2375
    # (the max would give (0.7*1 + 0.7*4)/2 = 1.75 ; the first head alone (0.7 + 0.3)/2 = 0.5)
    assert stats["loss/v"] == pytest.approx(0.2375, abs=1e-6)
    loss.backward()
    # d/dv of w*(y - v)^2/2 = -w*(y - v): -0.7*0.5 = -0.35 ; -0.3*(-1) = 0.3
    close(v.grad, [[-0.35, 0.3]])
    assert tq1.grad is None and tq2.grad is None  # the targets are detached


# --- CQL -------------------------------------------------------------------------------------


def test_cql_term_is_cross_entropy():
    # Head 1: q = [0, ln 3] -> softmax [0.25, 0.75] ; head 2: q = [0, 0] -> [0.5, 0.5]
    # Row 0 takes actions [0, 1]; row 1 is one real token (action 1) then NaN padding.
    q1 = t([[[0.0, LN3], [0.0, LN3]], [[0.0, LN3], [NAN, NAN]]])
    q2 = t([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [NAN, NAN]]])
    actions = torch.tensor([[0, 1], [1, 5]])
    mask = t([[1, 1], [1, 0]])
    zeros = torch.zeros(2, 2, 2)
    _, stats = ilql_losses(
        (q1, q2), (zeros, zeros), torch.zeros(2, 2), zeros, actions, torch.zeros(2, 2), mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.5, awac_scale=0.0),
    )  # fmt: skip
    # head 1: -ln 0.25 = 1.3862944 ; -ln 0.75 = 0.2876821 (twice) -> 1.9616586/3 = 0.6538862
    # head 2: -ln 0.5 = 0.6931472 at every token -> 0.6931472
    # cql = 0.5 * (0.6538862 + 0.6931472) = 0.5 * 1.3470334 = 0.6735167
    assert stats["loss/cql"] == pytest.approx(0.6735167, abs=1e-6)
    # torch's own cross-entropy over the three real tokens agrees.
    rows, acts = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
    cols = torch.tensor([0, 1, 0])
    ce = sum(nn.functional.cross_entropy(q[rows, cols], acts) for q in (q1, q2))
    assert stats["loss/cql"] == pytest.approx(0.5 * float(ce), abs=1e-6)
    # cql_scale 0 drops the term.
    _, stats0 = ilql_losses(
        (q1, q2), (zeros, zeros), torch.zeros(2, 2), zeros, actions, torch.zeros(2, 2), mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=0.0),
    )  # fmt: skip
    assert stats0["loss/cql"] == 0.0


# --- AWAC ------------------------------------------------------------------------------------


def test_awac_weights_are_clamped_and_detached():
    # 3 tokens, action 0 each, uniform LM logits over 2 tokens -> NLL = ln 2 = 0.6931472 each.
    actions = torch.tensor([[0, 0, 0, 1]])
    mask = t([[1, 1, 1, 0]])
    # min over target heads at the taken actions: [20, 2 ln 3, -40] (head 2 is higher)
    tq1 = _one_hot_q([[20.0, 2 * LN3, -40.0, NAN]], actions.tolist(), vocab=2, fill=0.0)
    tq2 = tq1 + 1.0
    v = torch.zeros(1, 4, requires_grad=True)
    logits = torch.zeros(1, 4, 2).requires_grad_(True)
    q = torch.zeros(1, 4, 2)
    _, stats = ilql_losses(
        (q, q), (tq1, tq2), v, logits, actions, torch.zeros(1, 4), mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=2.0, beta=0.5),
    )  # fmt: skip
    # beta 0.5: exp(10) = 22026.47 -> clamped to 100 ; exp(ln 3) = 3 ; exp(-20) = 2.06e-9
    # weight mean = (100 + 3 + 0.00000000206)/3 = 34.333333
    assert AWAC_WEIGHT_MAX == 100.0
    assert stats["awac/weight_mean"] == pytest.approx(34.333333, abs=1e-5)
    # awac = 2 * (100 + 3 + 2.06e-9) * 0.6931472 / 3 = 2 * 71.3941595 / 3 = 47.5961063
    assert stats["loss/awac"] == pytest.approx(47.5961063, abs=1e-4)
    loss, _ = ilql_losses(
        (q, q), (tq1, tq2), v, logits, actions, torch.zeros(1, 4), mask,
        IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.0, awac_scale=1.0, beta=0.5),
    )  # fmt: skip
    loss.backward()
    # d/dlogits of w * NLL / 3 = w/3 * (softmax - onehot(0)) = w/3 * [-0.5, 0.5]
    #   w = 100: [-16.666667, 16.666667] ; w = 3: [-0.5, 0.5] ; w ~ 0: [0, 0] ; padding 0
    close(
        logits.grad,
        [[[-16.666667, 16.666667], [-0.5, 0.5], [0.0, 0.0], [0.0, 0.0]]],
        atol=1e-5,
    )
    # v gets gradient from the V loss only (the AWAC weight is detached):
    # d/dv of w*(y - v)^2/3 at v = 0 is -2*w*y/3 with the expectile weight w:
    #   y = 20: -2*0.7*20/3 = -9.333333 ; y = 2 ln 3 = 2.1972246: -2*0.7*2.1972246/3 = -1.0253715
    #   y = -40: -2*0.3*(-40)/3 = 8.0 ; padding 0
    close(v.grad, [[-9.333333, -1.0253715, 8.0, 0.0]], atol=1e-5)


# --- heads -----------------------------------------------------------------------------------


def test_heads_shapes_small_init_and_no_target_gradients():
    torch.manual_seed(0)
    heads = ILQLHeads(8, 11)
    assert len(heads.q_heads) == 2 and len(heads.target_q_heads) == 2
    assert heads.q_heads[0][0].out_features == 16  # head_hidden defaults to 2 * hidden
    assert ILQLHeads(8, 11, head_hidden=5).v_head[0].out_features == 5
    hidden = torch.randn(2, 5, 8, requires_grad=True)
    qs, target_qs, v = heads(hidden)
    assert [tuple(q.shape) for q in qs] == [(2, 5, 11), (2, 5, 11)]
    assert [tuple(q.shape) for q in target_qs] == [(2, 5, 11), (2, 5, 11)]
    assert tuple(v.shape) == (2, 5)
    # Targets start as copies; the two Q heads start different.
    assert torch.equal(qs[0], target_qs[0]) and torch.equal(qs[1], target_qs[1])
    assert not torch.equal(qs[0], qs[1])
    # Near-zero outputs at the start.
    assert max(float(q.detach().abs().max()) for q in qs) < 0.1
    assert float(v.detach().abs().max()) < 0.1
    assert all(not q.requires_grad for q in target_qs)
    (sum(q.sum() for q in qs) + sum(q.sum() for q in target_qs) + v.sum()).backward()
    assert all(p.grad is None for p in heads.target_q_heads.parameters())
    assert all(p.grad is not None for p in heads.q_heads.parameters())
    assert all(p.grad is not None for p in heads.v_head.parameters())
    single = ILQLHeads(8, 11, two_qs=False)
    qs1, tqs1, _ = single(torch.randn(1, 3, 8))
    assert len(qs1) == 1 and len(tqs1) == 1


def test_optimisation_reduces_total_loss():
    torch.manual_seed(0)
    batch, length, hidden_size, vocab = 3, 4, 6, 5
    heads = ILQLHeads(hidden_size, vocab)
    lm_head = nn.Linear(hidden_size, vocab)
    hidden = torch.randn(batch, length, hidden_size)
    actions = torch.randint(0, vocab, (batch, length))
    mask = t([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]])
    rewards = t([[0, 0, 0, 1.0], [0, 0, -1.0, 0], [0, 0.5, 0, 0]])
    params = [p for p in heads.parameters() if p.requires_grad] + list(lm_head.parameters())
    weights = IlqlLossWeights(gamma=0.99, tau=0.7, cql_scale=0.1, awac_scale=1.0, beta=1.0)
    losses = []
    for _ in range(20):
        qs, target_qs, v = heads(hidden)
        loss, stats = ilql_losses(
            qs, target_qs, v, lm_head(hidden), actions, rewards, mask, weights
        )
        assert stats["loss/total"] == pytest.approx(
            stats["loss/q"] + stats["loss/v"] + stats["loss/cql"] + stats["loss/awac"], rel=1e-5
        )
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():  # plain SGD (torch.optim's first step imports torch._dynamo: slow)
            for p in params:
                p.sub_(0.5 * p.grad)
        heads.sync_target(0.1)
        losses.append(float(loss.detach()))
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0], losses
