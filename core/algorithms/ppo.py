"""PPO for language models (Ziegler et al. 2019; Stiennon et al. 2020): the tensor math and
the update.

Per-token tensors are [B, R] over response tokens with a right-padded ``mask`` (see
``core.algorithms.common``). All results are float32.
"""

from __future__ import annotations

import math

import torch

from core.algorithms.base import Algorithm, UpdateResult
from core.algorithms.common import (
    bool_mask,
    explained_variance,
    kl_estimate,
    masked_fill_zero,
    masked_mean,
    masked_whiten,
)
from core.config import kl_placement
from core.lm.device import autocast
from core.lm.forward import entropy_from_logits, logprobs_from_logits
from core.parallel import distributed


@torch.no_grad()
def per_token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (rewards [B, R], kl [B, R]), float32, 0 at padding, without gradient.

    rewards = -kl_coef * kl at every real token, plus scores[b] at the last real token of row b
    (the last position where mask is 1). A row whose mask is all 0 gets no score: its rewards
    are all 0.
    """
    m = bool_mask(mask)
    zero = torch.zeros((), dtype=torch.float32, device=m.device)
    kl = masked_fill_zero(kl_estimate(logprobs, ref_logprobs, estimator), m)
    rewards = -kl_coef * kl
    positions = torch.arange(m.shape[1], device=m.device).expand_as(m)
    last = torch.where(m, positions, -1).max(dim=1).values  # [B], -1 for empty rows
    score = torch.where(last >= 0, scores.float().reshape(-1), zero)
    rewards.scatter_add_(1, last.clamp_min(0).unsqueeze(1), score.unsqueeze(1))
    return rewards, kl


@torch.no_grad()
def gae_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
    bootstrap: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (advantages [B, R], returns [B, R]), float32, 0 at padding, without gradient.

    Generalised advantage estimation run backwards over the response:
    delta_t = r_t + gamma * V_{t+1} - V_t and A_t = delta_t + gamma * lam * A_{t+1}, where
    A after the last real token is 0 and V there is ``bootstrap[b]`` (the value of the state
    after the last token, for a completion cut before it ended: Pardo et al. 2018), by
    default 0 (the episode ends there). returns = advantages + values. Padding
    rewards/values (even NaN) are ignored.
    """
    m = bool_mask(mask)
    zero = torch.zeros((), dtype=torch.float32, device=m.device)
    r = masked_fill_zero(rewards, m)
    v = masked_fill_zero(values, m)
    batch, length = r.shape
    after = torch.zeros(batch, dtype=torch.float32, device=r.device)
    if bootstrap is not None:
        after = bootstrap.float().reshape(batch).to(r.device)
    advantages = torch.zeros_like(r)
    next_value = after
    next_adv = torch.zeros_like(next_value)
    for t in range(length - 1, -1, -1):
        delta = r[:, t] + gamma * next_value - v[:, t]
        # At a padding position the running advantage resets to 0, so nothing leaks backwards.
        next_adv = torch.where(m[:, t], delta + gamma * lam * next_adv, zero)
        advantages[:, t] = next_adv
        # Past the last real token, what follows it is the bootstrap value.
        next_value = torch.where(m[:, t], v[:, t], after)
    return advantages, advantages + v


def truncation_bootstrap(rollout) -> torch.Tensor | None:
    """[B]: V after the last token for completions cut by max_new_tokens, 0 for those that
    ended (their episode is over); None without the rollout-time values."""
    if rollout.final_values is None:
        return None
    # The rollout's no-grad values (the sampling-time value head), fixed over the epochs.
    return torch.where(rollout.ended, 0.0, rollout.final_values.float())


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    clip_high: float | None = None,
    is_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (loss 0-d, stats) for the clipped surrogate objective, float32.

    ratio = exp(logprobs - old_logprobs);
    loss = masked mean of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps_high)), with
    eps_high = ``clip_high`` (DAPO's clip-higher), by default ``clip_range``; each token's
    term times ``is_weight`` [B, R] (detached truncated importance weights) when given.
    stats (detached 0-d tensors): ``clipfrac`` share of real tokens where the clipped term was
    active; ``approx_kl`` the k3 estimate mean((ratio - 1) - log ratio) of KL(old || new);
    ``ratio_mean``.
    """
    m = bool_mask(mask)
    # Zeroing padding before any arithmetic keeps NaN/inf there out of values and gradients.
    log_ratio = masked_fill_zero(logprobs.float() - old_logprobs.float(), m)
    ratio = torch.exp(log_ratio)
    adv = masked_fill_zero(advantages, m)
    unclipped = -adv * ratio
    high = clip_range if clip_high is None else clip_high
    clipped = -adv * ratio.clamp(1.0 - clip_range, 1.0 + high)
    per_token = torch.maximum(unclipped, clipped)
    if is_weight is not None:
        per_token = per_token * is_weight
    loss = masked_mean(per_token, m)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), m),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, m),
            "ratio_mean": masked_mean(ratio, m),
        }
    return loss, stats


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (loss 0-d, stats) for the clipped value loss, float32.

    v_clip = clip(values, old - eps, old + eps);
    loss = 0.5 * masked mean of max((values - R)^2, (v_clip - R)^2).
    stats (detached 0-d tensors): ``vf_clipfrac`` share of real tokens where the clipped term
    was the larger one.
    """
    m = bool_mask(mask)
    v = masked_fill_zero(values, m)
    old = masked_fill_zero(old_values, m)
    ret = masked_fill_zero(returns, m)
    v_clipped = old + (v - old).clamp(-clip_range_value, clip_range_value)
    unclipped = (v - ret) ** 2
    clipped = (v_clipped - ret) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), m)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((clipped > unclipped).float(), m)}
    return loss, stats


class PPO(Algorithm):
    """Clipped PPO with a value head, GAE and a per-token KL penalty in the reward."""

    needs_value_head = True
    # A2C: one optimiser step per batch, its minibatches only bound the memory.
    one_step_per_batch = False

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        cfg, mask = self.cfg, rollout.mask
        scores = self.shape_scores(scores, rollout.ended)
        _, estimator = kl_placement(cfg)
        rewards, _ = per_token_rewards(
            scores, rollout.logprobs, rollout.ref_logprobs, mask, self.kl_ctl.value, estimator
        )
        bootstrap = truncation_bootstrap(rollout) if cfg.bootstrap_truncated else None
        advantages, returns = gae_advantages(
            rewards, rollout.values, mask, cfg.gamma, cfg.lam, bootstrap
        )
        if cfg.whiten_advantages:  # over the whole batch, every rank's share of it
            whiten = distributed.masked_whiten if distributed.active() else masked_whiten
            advantages = whiten(advantages, mask)
        batch = mask.shape[0]
        size = math.ceil(batch / cfg.minibatches)
        tokens = mask.sum().clamp(min=1)
        stats: dict[str, list[float]] = {
            k: [] for k in ("pl", "vl", "clipfrac", "approx_kl", "vf_clip", "norm")
        }
        per_epoch = math.ceil(batch / size)
        epochs = skipped = 0
        for _epoch in range(cfg.epochs):
            epochs += 1
            order = torch.randperm(batch, device=mask.device)
            for start in range(0, batch, size):
                rows = order[start : start + size]
                skipped += self._minibatch(rollout, rows, advantages, returns, tokens, stats)
            if cfg.target_kl and _mean(stats["approx_kl"][-per_epoch:]) > cfg.target_kl:
                break  # the policy moved far enough from the one that sampled
        if self.one_step_per_batch:
            stats["norm"].append(self._step_accumulated(stats["pl"], stats["vl"]))
        kl, kl_metrics = self.finish_update(rollout)
        mean = _mean
        metrics = {
            "policy/epochs": epochs,
            "policy/ratio_skipped": skipped,
            "loss/policy": mean(stats["pl"]),
            "loss/value": mean(stats["vl"]),
            "policy/clipfrac": mean(stats["clipfrac"]),
            "policy/approx_kl": mean(stats["approx_kl"]),
            "value/clipfrac": mean(stats["vf_clip"]),
            "value/explained_variance": explained_variance(rollout.values, returns, mask),
            **kl_metrics,
            "objective/score_shaped": float(scores.mean()),
            "policy/grad_norm": mean(stats["norm"]),
        }
        if bootstrap is not None and not bool(rollout.ended.all()):
            metrics["value/bootstrap_mean"] = float(bootstrap[~rollout.ended].mean())
        return UpdateResult(metrics, advantages.detach(), kl)

    def _minibatch(self, rollout, rows, advantages, returns, tokens, stats) -> bool:
        """Losses and the step of some rows, their figures into `stats`; True when the
        step was skipped for a mean ratio past `ratio_threshold` (a loss spike)."""
        pl, vl, ps, vs = self._losses(rollout, rows, advantages, returns)
        spike = float(ps["ratio_mean"]) > self.cfg.ratio_threshold
        if not spike:
            loss = pl + self.cfg.vf_coef * vl
            norm = self._minibatch_step(loss, rollout.mask[rows], tokens)
            if norm is not None:
                stats["norm"].append(norm)
        stats["pl"].append(float(pl.detach()))
        stats["vl"].append(float(vl.detach()))
        stats["clipfrac"].append(float(ps["clipfrac"]))
        stats["approx_kl"].append(float(ps["approx_kl"]))
        stats["vf_clip"].append(float(vs["vf_clipfrac"]))
        return spike

    def _minibatch_step(self, loss, mask, tokens) -> float | None:
        """A step of its own (its gradient norm), or (A2C) this slice's share of the
        batch's one step, taken later (None)."""
        if not self.one_step_per_batch:
            return self.optimizer_step(loss)
        loss = loss * (mask.sum() / tokens)
        if torch.isfinite(loss):
            loss.backward()
        return None

    def _losses(self, rollout, rows, advantages, returns):
        """(policy loss with the entropy bonus, value loss, their stats) of some rows."""
        cfg, m = self.cfg, rollout.mask[rows]
        with autocast(self.device, self.dtype):
            out = self.policy.response_outputs(
                rollout.query_response[rows], rollout.attention_mask[rows], rollout.prompt_len
            )
        logits = out.logits.float() / self.temperature
        logp = logprobs_from_logits(logits, rollout.response[rows])
        is_weights = self.is_weights(rollout)  # None: the policy sampled itself
        pl, ps = ppo_policy_loss(
            logp,
            rollout.logprobs[rows],
            advantages[rows],
            m,
            cfg.clip_range,
            cfg.epsilon_high or None,
            None if is_weights is None else is_weights[rows],
        )
        if cfg.entropy_coef:
            pl = pl + self.entropy_bonus(entropy_from_logits(logits), m, m.sum())
        vl, vs = ppo_value_loss(
            out.values.float(), rollout.values[rows], returns[rows], m, cfg.clip_range_value
        )
        return pl, vl, ps, vs

    def _step_accumulated(self, policy_losses, value_losses) -> float:
        """The one step of a batch whose minibatches only accumulated gradients."""
        total = sum(policy_losses) + self.cfg.vf_coef * sum(value_losses)
        if distributed.any_rank(not math.isfinite(total)):
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            return math.nan
        return self.apply_gradients()


def _mean(xs: list[float]) -> float:
    """The mean; NaN for an empty list (every minibatch skipped)."""
    return float(sum(xs) / len(xs)) if xs else math.nan
