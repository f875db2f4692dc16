"""GRPO (Shao et al. 2024): advantages relative to the other completions of the same
prompt, a clipped ratio over several passes, and KL to the reference as a k3 loss
term; no critic. `objective/frac_reward_zero_std` shows how many groups were all
alike and so taught nothing."""

from __future__ import annotations

import math

import torch

from core.algorithms.base import Algorithm, UpdateResult
from core.algorithms.group import group_advantages, grpo_policy_loss


class GRPO(Algorithm):
    @property
    def one_pass(self) -> bool:
        return self.cfg.epochs == 1 and self.cfg.minibatches == 1

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        cfg, mask = self.cfg, rollout.mask
        scores = self.shape_scores(scores, rollout.ended)
        advantages, frac_zero_std = group_advantages(
            scores, cfg.group_size, scale_by_std=cfg.scale_by_std
        )
        coef = self.kl_ctl.value
        batch = mask.shape[0]
        size = math.ceil(batch / cfg.minibatches)
        stats: dict[str, list[float]] = {"loss": [], "clipfrac": [], "approx_kl": [], "norm": []}
        for _epoch in range(cfg.epochs):
            order = torch.randperm(batch, device=mask.device)
            for start in range(0, batch, size):
                rows = order[start : start + size]
                if rollout.logprobs is None:  # one pass: the weights have not moved yet
                    logp = self.sampling_logprobs_from_update(rollout, rows)
                else:
                    logp = self.policy_logprobs(rollout, rows)
                loss, st = grpo_policy_loss(
                    logp,
                    rollout.logprobs[rows],
                    rollout.ref_logprobs[rows],
                    advantages[rows],
                    mask[rows],
                    cfg.clip_range,
                    coef,
                    normalize=cfg.loss_normalization,
                )
                stats["norm"].append(self.optimizer_step(loss))
                stats["loss"].append(float(loss.detach()))
                stats["clipfrac"].append(float(st["clipfrac"]))
                stats["approx_kl"].append(float(st["approx_kl"]))
        kl, kl_metrics = self.finish_update(rollout)

        def mean(xs: list[float]) -> float:
            return sum(xs) / len(xs)

        metrics = {
            "loss/policy": mean(stats["loss"]),
            "policy/clipfrac": mean(stats["clipfrac"]),
            "policy/approx_kl": mean(stats["approx_kl"]),
            "policy/grad_norm": mean(stats["norm"]),
            "objective/frac_reward_zero_std": frac_zero_std,
            **kl_metrics,
        }
        token_adv = advantages[:, None].expand_as(mask) * mask
        return UpdateResult(metrics, token_adv.detach(), kl)
