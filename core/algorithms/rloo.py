"""RLOO (Ahmadian et al. 2024): k completions per prompt, each judged against the mean
of the other k-1; no critic. The KL to the reference is either subtracted from each
completion's score (per-token penalty, summed) or added to the loss."""

from __future__ import annotations

import torch

from core.algorithms.base import Algorithm, UpdateResult
from core.algorithms.common import kl_estimate, masked_sum
from core.algorithms.group import constant_group_share, rloo_advantages, rloo_loss
from core.config import kl_placement


class RLOO(Algorithm):
    @property
    def one_pass(self) -> bool:
        # One minibatch: the update's forward covers every row before the weights move (the
        # KL in the reward needs all rows' logprobs before any loss).
        return self.cfg.minibatches == 1

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        cfg, mask = self.cfg, self.loss_mask(rollout)
        first = None
        if rollout.logprobs is None:  # one pass: the update's forward is the sampling policy's
            first = self.sampling_logprobs_from_update(rollout, slice(None))
        scores = self.shape_scores(scores, rollout.ended)
        frac_zero_std = constant_group_share(scores, cfg.group_size)  # before the KL penalty
        coef = self.kl_ctl.value
        where, estimator = kl_placement(cfg)
        if where == "reward":
            kl = kl_estimate(rollout.logprobs, rollout.ref_logprobs, estimator)
            scores = scores - coef * masked_sum(kl, rollout.mask, dim=1)
        advantages = rloo_advantages(scores, cfg.group_size)
        batch = mask.shape[0]
        tokens = mask.sum().clamp(min=1)  # the whole batch's: minibatches must not reweigh
        is_weights = self.is_weights(rollout)

        def minibatch_loss(logp, entropy, rows):
            w = None if is_weights is None else is_weights[rows]
            loss = rloo_loss(logp, advantages[rows], mask[rows], w) * (logp.shape[0] / batch)
            if where == "loss":
                kl = kl_estimate(logp, rollout.ref_logprobs[rows], estimator)
                loss = loss + coef * masked_sum(kl, mask[rows]) / tokens
            if entropy is not None:
                loss = loss + self.entropy_bonus(entropy, mask[rows], tokens)
            return loss

        loss, norm = self.accumulated_step(rollout, minibatch_loss, first)
        kl, kl_metrics = self.finish_update(rollout)
        metrics = {
            "loss/policy": loss,
            **kl_metrics,
            "objective/score_shaped": float(scores.mean()),
            "policy/grad_norm": norm,
            "objective/frac_reward_zero_std": frac_zero_std,
        }
        token_adv = advantages[:, None].expand_as(rollout.mask) * rollout.mask
        return UpdateResult(metrics, token_adv.detach(), kl)
