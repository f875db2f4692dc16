"""GRPO (Shao et al. 2024) and its family: advantages relative to the other completions of
the same prompt, a clipped ratio over several passes, no critic. TRL's settings choose the
variant: `loss_type` (grpo / bnpo / dr_grpo / dapo), `scale_rewards` (group / batch / none),
`epsilon_high` (DAPO's clip-higher), `importance_sampling_level` ("sequence": GSPO) and
`mask_truncated_completions`. The KL to the reference is a loss term (k3) by default, or a
per-token penalty in the reward (`kl_in`). `objective/frac_reward_zero_std` shows how many
groups were all alike and so taught nothing."""

from __future__ import annotations

import math

import torch

from core.algorithms.base import Algorithm, UpdateResult
from core.algorithms.common import kl_estimate, masked_sum
from core.algorithms.group import group_advantages, grpo_policy_loss, high_entropy_mask
from core.config import kl_placement
from core.parallel import distributed


class GRPO(Algorithm):
    @classmethod
    def options(cls, cfg, models) -> dict:
        return {"max_new_tokens": cfg.generation.max_new_tokens}

    def __init__(self, *args, max_new_tokens: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_new_tokens = max_new_tokens

    @property
    def one_pass(self) -> bool:
        return self.cfg.epochs == 1 and self.cfg.minibatches == 1

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        cfg, mask = self.cfg, self.loss_mask(rollout)
        is_weights = self.is_weights(rollout)
        first = None
        if rollout.logprobs is None:  # one pass: the weights have not moved yet
            first = self.sampling_logprobs_from_update(rollout, slice(None))
        coef = self.kl_ctl.value
        where, estimator = kl_placement(cfg)
        advantages, frac_zero_std = self._advantages(rollout, scores, coef, where, estimator)
        # The loss's own KL term: none when the KL went into the reward.
        loss_kl = (coef, estimator) if where == "loss" else (0.0, "k3")
        batch = mask.shape[0]
        size = math.ceil(batch / cfg.minibatches)
        stats: dict[str, list[float]] = {"loss": [], "clipfrac": [], "approx_kl": [], "norm": []}
        for _epoch in range(cfg.epochs):
            # Drawn in every mode, so the one-pass run's random stream stays the full run's.
            order = torch.randperm(batch, device=mask.device)
            for start in range(0, batch, size):
                rows = slice(None) if first is not None else order[start : start + size]
                logp, entropy = first or self.minibatch_outputs(rollout, rows)
                w = None if is_weights is None else is_weights[rows]
                loss, st = self._loss(rollout, rows, logp, entropy, advantages, mask, loss_kl, w)
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
        token_adv = advantages[:, None].expand_as(rollout.mask) * rollout.mask
        return UpdateResult(metrics, token_adv.detach(), kl)

    def _advantages(self, rollout, scores, coef: float, where: str, estimator: str):
        cfg = self.cfg
        scores = self.shape_scores(scores, rollout.ended)
        if where == "reward":
            kl = kl_estimate(rollout.logprobs, rollout.ref_logprobs, estimator)
            scores = scores - coef * masked_sum(kl, rollout.mask, dim=1)
        batch_std = None
        if cfg.scale_rewards == "batch":  # every process's scores: one scale everywhere
            everyone = distributed.all_cat(scores.float())
            batch_std = float(everyone.std()) if everyone.numel() > 1 else 0.0
        return group_advantages(
            scores, cfg.group_size, scale=cfg.scale_rewards, batch_std=batch_std
        )

    def _loss(self, rollout, rows, logp, entropy, advantages, mask, loss_kl, is_weight=None):
        cfg, m = self.cfg, mask[rows]
        forking = None
        if cfg.top_entropy_quantile < 1.0:  # only the forking tokens carry the policy term
            forking = high_entropy_mask(rollout.entropy[rows], m, cfg.top_entropy_quantile)
        normalize, divisor = self._normalization(m)
        kl_coef, kl_estimator = loss_kl
        loss, stats = grpo_policy_loss(
            logp,
            rollout.logprobs[rows],
            rollout.ref_logprobs[rows],
            advantages[rows],
            m,
            cfg.clip_range,
            kl_coef,
            normalize,
            clip_high=cfg.epsilon_high or None,
            kl_estimator=kl_estimator,
            level=cfg.importance_sampling_level,
            divisor=divisor,
            policy_mask=forking,
            is_weight=is_weight,
        )
        if entropy is not None:
            loss = loss + self.entropy_bonus(entropy, m, m.sum())
        return loss, stats

    def _normalization(self, m: torch.Tensor) -> tuple[str, float | None]:
        """TRL's `loss_type` as (normalize, divisor) of `grpo_policy_loss` for one optimiser
        step's rows. Gradients are averaged over processes, so a divisor shared by all of
        them is divided by their number here."""
        kind = self.cfg.loss_type
        if kind == "grpo":
            return "sequence", None
        if kind == "bnpo":
            return "token", None
        if kind == "dr_grpo":  # a constant: every completion's tokens weigh the same
            return "sum", float(m.shape[0] * self.max_new_tokens)
        tokens = distributed.all_sum(m.sum().float().reshape(1))  # dapo: every process's
        return "sum", max(float(tokens) / distributed.world_size(), 1e-8)
