"""RLOO (Ahmadian et al. 2024): k completions per prompt, each judged against the mean
of the other k-1; no critic. The KL to the reference is either subtracted from each
completion's score (per-token penalty, summed) or added to the loss as k3."""

from __future__ import annotations

import torch

from core.algorithms.base import Algorithm, UpdateResult
from core.algorithms.common import kl_estimate, masked_mean
from core.algorithms.group import constant_group_share, rloo_advantages, rloo_loss


class RLOO(Algorithm):
    @property
    def one_pass(self) -> bool:
        # One minibatch: the update's forward covers every row before the weights move (the
        # KL in the reward needs all rows' logprobs before any loss).
        return self.cfg.minibatches == 1

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        cfg, mask = self.cfg, rollout.mask
        logp = None
        if rollout.logprobs is None:  # one pass: the update's forward is the sampling policy's
            logp = self.sampling_logprobs_from_update(rollout, slice(None))
        scores = self.shape_scores(scores, rollout.ended)
        frac_zero_std = constant_group_share(scores, cfg.group_size)  # before the KL penalty
        coef = self.kl_ctl.value
        if cfg.kl_in == "reward":
            kl_pen = kl_estimate(rollout.logprobs, rollout.ref_logprobs, cfg.kl_estimator) * mask
            scores = scores - coef * kl_pen.sum(1)
        advantages = rloo_advantages(scores, cfg.group_size)
        batch = mask.shape[0]

        def minibatch_loss(logp, rows):
            loss = rloo_loss(logp, advantages[rows], mask[rows]) * (logp.shape[0] / batch)
            if cfg.kl_in == "loss":
                k3 = kl_estimate(logp, rollout.ref_logprobs[rows], "k3")
                loss = loss + coef * masked_mean(k3, mask[rows]) * (logp.shape[0] / batch)
            return loss

        loss, norm = self.accumulated_step(rollout, minibatch_loss, logp)
        kl, kl_metrics = self.finish_update(rollout)
        metrics = {
            "loss/policy": loss,
            **kl_metrics,
            "objective/score_shaped": float(scores.mean()),
            "policy/grad_norm": norm,
            "objective/frac_reward_zero_std": frac_zero_std,
        }
        token_adv = advantages[:, None].expand_as(mask) * mask
        return UpdateResult(metrics, token_adv.detach(), kl)
