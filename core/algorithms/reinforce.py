"""REINFORCE with a moving-average baseline for language models: the tensor math and
the update.

Per-token tensors are [B, R] over response tokens with a right-padded ``mask`` (see
``core.algorithms.common``). All results are float32.
"""

from __future__ import annotations

import torch

from core.algorithms.base import Algorithm, UpdateResult
from core.algorithms.common import (
    bool_mask,
    kl_estimate,
    masked_fill_zero,
    masked_sum,
)
from core.config import kl_placement
from core.parallel import distributed


class MovingAverageBaseline:
    """Exponential moving average of batch mean scores, used as the REINFORCE baseline."""

    def __init__(self, decay: float):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.value: float | None = None

    def update(self, batch_mean_score: float) -> float:
        """Returns the new baseline: the batch mean at first, then decay*value + (1-decay)*mean."""
        x = float(batch_mean_score)
        if self.value is None:
            self.value = x
        else:
            self.value = self.decay * self.value + (1.0 - self.decay) * x
        return self.value

    def state_dict(self) -> dict:
        """Returns {"value": baseline or None}."""
        return {"value": self.value}

    def load_state_dict(self, d: dict) -> None:
        """Restores the baseline from a state_dict."""
        v = d["value"]
        self.value = None if v is None else float(v)


@torch.no_grad()
def sequence_advantages(
    scores: torch.Tensor,
    kl: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    baseline: float,
) -> torch.Tensor:
    """Returns float32 [B]: scores - kl_coef * (sum of kl over real tokens) - baseline.

    Pass baseline=0.0 when no baseline exists yet. Computed without gradient.
    """
    return scores.float() - kl_coef * masked_sum(kl, mask, dim=1) - baseline


def reinforce_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    is_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Returns the 0-d float32 loss -sum_bt(A_b * w_bt * logp_bt * mask_bt) / sum_bt(mask_bt).

    Token-level normalisation: every real token in the batch weighs the same, so longer
    responses contribute more terms; 0 when the mask is empty. w = ``is_weight`` [B, R]
    (detached truncated importance weights), or 1 when None.
    """
    m = bool_mask(mask)
    weighted = advantages.float().reshape(-1, 1) * masked_fill_zero(logprobs, m)
    if is_weight is not None:
        weighted = weighted * is_weight
    return -masked_sum(weighted, m) / m.sum().float().clamp_min(1.0)


class Reinforce(Algorithm):
    """REINFORCE with a moving-average baseline; the KL penalty is part of the return."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.baseline = MovingAverageBaseline(self.cfg.baseline_decay)

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        cfg, mask = self.cfg, rollout.mask
        scores = self.shape_scores(scores, rollout.ended)
        _, estimator = kl_placement(cfg)
        kl_pen = kl_estimate(rollout.logprobs, rollout.ref_logprobs, estimator) * mask
        coef = self.kl_ctl.value
        returns = scores - coef * kl_pen.sum(1)
        # The first batch has no history: its own mean is the only honest baseline.
        batch_mean = float(distributed.mean(returns))  # over all ranks: one baseline
        baseline = self.baseline.value if self.baseline.value is not None else batch_mean
        advantages = sequence_advantages(scores, kl_pen, mask, coef, baseline)
        self.baseline.update(batch_mean)
        loss_mask = self.loss_mask(rollout)
        total_tokens = loss_mask.sum().clamp(min=1)
        is_weights = self.is_weights(rollout)

        def minibatch_loss(logp, entropy, rows):  # token-normalised over the whole batch
            m = loss_mask[rows]
            w = None if is_weights is None else is_weights[rows]
            loss = reinforce_loss(logp, advantages[rows], m, w) * (m.sum() / total_tokens)
            if entropy is not None:
                loss = loss + self.entropy_bonus(entropy, m, total_tokens)
            return loss

        loss, norm = self.accumulated_step(rollout, minibatch_loss)
        kl, kl_metrics = self.finish_update(rollout)
        metrics = {
            "loss/policy": loss,
            **kl_metrics,
            "objective/baseline": baseline,
            "objective/score_shaped": float(scores.mean()),
            "policy/grad_norm": norm,
        }
        token_adv = advantages[:, None].expand_as(mask) * mask
        return UpdateResult(metrics, token_adv.detach(), kl.detach())

    def state_dict(self) -> dict:
        return dict(super().state_dict(), baseline=self.baseline.state_dict())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.baseline.load_state_dict(state["baseline"])
