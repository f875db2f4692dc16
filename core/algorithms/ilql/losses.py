"""Token-level Q-learning in the style of ILQL (Snell et al. 2022, "Offline RL for Natural
Language Generation with Implicit Language Q Learning"): the heads and the tensor math.

Every response token is an action; the state before it is the prompt plus the tokens so far.
Q heads score every vocabulary entry as the next action, a V head scores the state, and the
value targets come from an expectile regression of V onto target Q heads (as in IQL), so the
learned Q never has to take a max over actions it has not seen. The Q target is a
lambda-return (``lambda_returns``): with lam = 0 the one-step r + gamma * V(s') of the paper,
which moves a reward given at the last token back one token per round of V fitting; lam near 1
lets it reach every token of the response at once. At sampling time the language model's
logits are shifted by beta * (Q - V) (``ilql_decode_logits``).

Per-token tensors are [B, R] over response tokens with a right-padded ``mask`` (see
``core.algorithms.common``). All results are float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import torch

from core.algorithms.common import bool_mask, masked_fill_zero, masked_mean
from core.lm.forward import logprobs_from_logits

# AWAC weights exp(beta * advantage) are clamped to [0, AWAC_WEIGHT_MAX] so a single token
# with a large advantage estimate cannot dominate the language-modelling loss.
AWAC_WEIGHT_MAX = 100.0


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """Returns float32 |tau - 1(diff < 0)| * diff^2 elementwise, same shape as diff.

    diff = target - prediction. With tau > 0.5, predictions below the target (diff > 0) cost
    more than predictions above it, so the minimiser is an upper expectile of the target.
    """
    d = diff.float()
    weight = torch.where(d < 0, 1.0 - tau, tau)
    return weight * d * d


def _min_over_heads(values: list[torch.Tensor]) -> torch.Tensor:
    """Returns the elementwise minimum of one or more same-shaped tensors."""
    return reduce(torch.minimum, values)


def _taken(q: torch.Tensor, actions: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Returns float32 [B, R]: q [B, R, V] at the taken actions, 0 at padding."""
    return masked_fill_zero(q.gather(-1, actions.unsqueeze(-1)).squeeze(-1), m)


@dataclass(frozen=True)
class IlqlLossWeights:
    """The scalars of ILQL's loss (`IlqlConfig` carries them for a run: `of(cfg)`)."""

    gamma: float  # discount
    tau: float  # expectile of the V regression
    cql_scale: float
    awac_scale: float
    beta: float = 1.0  # inverse temperature of the AWAC weights
    lam: float = 0.0  # lambda of the Q target's lambda-return

    @classmethod
    def of(cls, cfg) -> IlqlLossWeights:
        return cls(cfg.gamma, cfg.tau, cfg.cql_scale, cfg.awac_scale, cfg.beta, cfg.lam)


def ilql_losses(
    qs: tuple[torch.Tensor, ...] | list[torch.Tensor],
    target_qs: tuple[torch.Tensor, ...] | list[torch.Tensor],
    v: torch.Tensor,
    logits: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    mask: torch.Tensor,
    w: IlqlLossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Returns (loss 0-d float32, stats) of ILQL over a batch of responses (weights `w`).

    Inputs are aligned per response position t: actions [B, R] are the tokens taken; qs and
    target_qs (tuples of [B, R, V], one per Q head), v [B, R] and logits [B, R, V] are the head
    and language-model outputs at the positions that predict those tokens; rewards [B, R]
    (typically the sequence score at the last real token, 0 elsewhere); mask [B, R].

    With V(s_{t+1}) = v[t + 1] for real next tokens and 0 after the last real token (terminal),
    Q_i(t) = qs[i] at the taken action, Qt(t) = min_i target_qs[i] at the taken action, G_t the
    lambda-return of ``lambda_returns`` (lam = 0: the one-step target r_t + gamma * V(s_{t+1})
    of ILQL), and every mean taken over real tokens:
      q    = sum_i mean (Q_i(t) - G_t)^2                                  (target detached)
      v    = mean expectile_loss(Qt(t) - v_t, tau)                        (Qt detached)
      cql  = cql_scale * sum_i mean cross_entropy(qs[i][t] as logits, a_t)
      awac = awac_scale * mean w_t * -log softmax(logits[t])[a_t],
             w_t = clamp(exp(beta * (Qt(t) - v_t)), 0, AWAC_WEIGHT_MAX)   (detached)
      loss = q + v + cql + awac
    A term whose scale is 0 is not computed.

    stats (floats): loss/total, loss/q, loss/v, loss/cql, loss/awac (each term as it enters the
    loss, scales included), q/mean (mean over real tokens of min_i Q_i(t)), v/mean, and
    awac/weight_mean.

    Padding positions never influence the loss or stats, even when they hold NaN/inf or an
    out-of-range action id. Gradients at padding are 0 for the per-token inputs; for the
    [B, R, V] inputs padding rows get 0 gradient as long as they are finite (the log-softmax
    of a NaN row back-propagates NaN).
    """
    if len(qs) == 0 or len(qs) != len(target_qs):
        raise ValueError(
            f"need as many target Q heads as Q heads (>= 1): {len(qs)}, {len(target_qs)}"
        )
    m = bool_mask(mask)
    zero = torch.zeros((), dtype=torch.float32, device=m.device)
    # Padding may hold any id (-100, pad id beyond the vocab); gather needs a valid one.
    acts = torch.where(m, actions.long(), 0)
    r = masked_fill_zero(rewards, m)
    v_t = masked_fill_zero(v, m)

    # Bootstrapped TD target. v_t is 0 at padding, so shifting it left gives V(s_{t+1}) at a
    # real next token and the terminal 0 after the last real token (and past the end).
    with torch.no_grad():
        next_v = torch.zeros_like(v_t)
        next_v[:, :-1] = v_t[:, 1:]
        td_target = lambda_returns(r, next_v, m, w.gamma, w.lam)

    q_taken = [_taken(q, acts, m) for q in qs]
    loss_q = sum(masked_mean((q - td_target) ** 2, m) for q in q_taken)

    with torch.no_grad():
        target_q = _min_over_heads([_taken(q, acts, m) for q in target_qs])
    loss_v = masked_mean(expectile_loss(target_q - v_t, w.tau), m)

    loss_cql = zero
    if w.cql_scale != 0:
        ce = sum(masked_mean(-logprobs_from_logits(q, acts), m) for q in qs)
        loss_cql = w.cql_scale * ce

    with torch.no_grad():
        adv = masked_fill_zero(target_q - v_t, m)
        weight = masked_fill_zero(torch.exp(w.beta * adv).clamp(0.0, AWAC_WEIGHT_MAX), m)
    loss_awac = zero
    if w.awac_scale != 0:
        nll = -logprobs_from_logits(logits, acts)
        loss_awac = w.awac_scale * masked_mean(weight * masked_fill_zero(nll, m), m)

    terms = {"q": loss_q, "v": loss_v, "cql": loss_cql, "awac": loss_awac}
    loss = loss_q + loss_v + loss_cql + loss_awac
    return loss, _stats(loss, terms, q_taken, v_t, weight, m)


@torch.no_grad()
def _stats(loss, terms: dict[str, torch.Tensor], q_taken, v_t, weight, m) -> dict[str, float]:
    return {
        "loss/total": float(loss),
        **{f"loss/{name}": float(term) for name, term in terms.items()},
        "q/mean": float(masked_mean(_min_over_heads(q_taken), m)),
        "v/mean": float(masked_mean(v_t, m)),
        "awac/weight_mean": float(masked_mean(weight, m)),
    }


def lambda_returns(
    rewards: torch.Tensor, next_v: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Returns float32 [B, R] TD(lambda) targets, 0 at padding.

    G_t = r_t + gamma * ((1 - lam) * V(s_{t+1}) + lam * G_{t+1}), with next_v [B, R] holding
    V(s_{t+1}) (0 at the last real token: the terminal) and G 0 after the last real token.
    lam = 0 is ILQL's one-step target r_t + gamma * V(s_{t+1}); lam = 1 the discounted Monte
    Carlo return of the sequence; in between, the reward at the end of a response reaches
    earlier tokens at once (weight (gamma * lam)^k, k tokens back) instead of one token per
    round of V fitting. This is the uncorrected lambda-return (Peng's Q(lambda)): the actions
    after t are the data's, so lam near 1 leans toward the data's own values.
    Padding in rewards and next_v may hold anything.
    """
    m = bool_mask(mask)
    r = masked_fill_zero(rewards, m)
    nv = masked_fill_zero(next_v, m)
    if lam == 0.0:
        return masked_fill_zero(r + gamma * nv, m)
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        running = r[:, t] + gamma * ((1.0 - lam) * nv[:, t] + lam * running)
        running = torch.where(m[:, t], running, 0.0)
        out[:, t] = running
    return out


def ilql_decode_logits(
    logits: torch.Tensor,
    qs: tuple[torch.Tensor, ...] | list[torch.Tensor],
    v: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Returns float32 logits + beta * (min_i qs[i] - v[..., None]) for sampling, shape [..., V].

    logits and every qs[i] are [..., V]; v is [...]. Pass the target Q heads' outputs, as ILQL
    does. Softmax of the result is pi_LM * exp(beta * (Q - V)), renormalised.
    """
    q = _min_over_heads([x.float() for x in qs])
    return logits.float() + beta * (q - v.float().unsqueeze(-1))


def terminal_rewards(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, R] zeros with each sequence's score at its last real token."""
    rewards = torch.zeros_like(mask, dtype=torch.float32)
    lengths = mask.sum(1).long()
    rows = torch.nonzero(lengths > 0).squeeze(-1)
    rewards[rows, lengths[rows] - 1] = scores[rows].float()
    return rewards
