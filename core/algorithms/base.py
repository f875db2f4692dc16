"""What every algorithm shares: the update interface, score shaping and one optimiser step."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.algorithms.common import (
    AdaptiveKLController,
    FixedKLController,
    RunningMoments,
    clip_scores,
    kl_k1,
    masked_sum,
    sampler_mismatch,
    truncated_is_weights,
)
from core.config import AlgorithmConfig, RunConfig
from core.lm.device import autocast
from core.lm.forward import entropy_from_logits, logprobs_from_logits
from core.parallel import distributed, sharding

# The trainer-state key of an algorithm's own heads in a checkpoint. Named when ILQL's were
# the only ones; kept, so that every checkpoint written so far still resumes.
HEADS_STATE_KEY = "ilql_heads"

# (hidden size, vocabulary size) -> the algorithm's heads on the LM's last hidden state.
HeadsFactory = Callable[[int, int], nn.Module]
# (models, prompt ids, attention mask, generation settings, end ids, control) -> prompt +
# sampled ids: an algorithm's own way of sampling, in place of the generic sampler.
Decode = Callable[..., torch.Tensor]


@dataclass
class UpdateResult:
    metrics: dict[str, float]
    advantages: torch.Tensor  # [B, R] per token, for the samples view
    kl: torch.Tensor  # [B, R] per-token k1 KL to the reference


class Algorithm:
    """An RL update over one batch of rollouts. Subclasses implement `update`.

    An algorithm that needs more than an update (heads of its own, its own parameter
    groups or sampler, an offline data set, extra files in an export) says so through the
    class-level hooks below, whose defaults are "nothing special": the loop, `load_models`,
    the rollout, checkpoints and exports call them and never ask which algorithm runs."""

    needs_value_head = False
    fsdp_unsupported: str | None = None  # why the algorithm cannot run under FSDP, if so

    @classmethod
    def options(cls, cfg: RunConfig, models) -> dict[str, Any]:
        """Extra keyword arguments of the constructor, from the recipe and the models."""
        return {}

    @classmethod
    def heads_factory(cls, cfg: RunConfig) -> HeadsFactory | None:
        """Heads of the algorithm's own, built by `load_models` under the run's seed."""
        return None

    @classmethod
    def param_groups(cls, policy: nn.Module, cfg: RunConfig) -> list[dict[str, Any]]:
        """The optimiser's parameter groups (their own learning rate, say)."""
        return [{"params": [p for p in policy.parameters() if p.requires_grad]}]

    @classmethod
    def decoder(cls, cfg: RunConfig, explore: bool = True) -> Decode | None:
        """The algorithm's own sampler for `generate_rollout(decode=...)`; None: the
        generic one. `explore=False` for evaluation."""
        return None

    @classmethod
    def offline_data(cls, cfg: RunConfig, tokenizer) -> Sequence | None:
        """A fixed data set to learn from instead of rollouts (`offline_update`), or None."""
        return None

    @classmethod
    def export_extras(cls, cfg: RunConfig, trainer_state: dict, out: Path) -> None:
        """Write what an exported model needs beyond the LM (heads, a note) into `out`."""

    def offline_update(self, items: Sequence) -> tuple[UpdateResult, Any]:
        """One update on items of `offline_data`; returns the result and the batch (with
        `.mask` [B, R] and `.scores` [B]) for the step's metrics."""
        raise NotImplementedError(f"{type(self).__name__} learns from rollouts only")

    def __init__(
        self,
        cfg: AlgorithmConfig,
        policy,
        optimizer,
        scheduler,
        *,
        max_grad_norm: float,
        temperature: float,
        device,
        dtype,
    ) -> None:
        self.cfg, self.policy, self.optimizer, self.scheduler = cfg, policy, optimizer, scheduler
        self.max_grad_norm, self.temperature = max_grad_norm, temperature
        self.device, self.dtype = device, dtype
        self.kl_ctl = (
            AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
            if cfg.adaptive_kl
            else FixedKLController(cfg.kl_coef)
        )
        self.score_moments = RunningMoments()
        self.skipped_steps = 0  # optimiser steps skipped for a non-finite loss or gradient
        self.optimizer_steps = 0  # and those taken

    def shape_scores(self, scores: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
        """EOS penalty, optional running-std scaling, then clipping."""
        if self.cfg.missing_eos_penalty:
            scores = scores - self.cfg.missing_eos_penalty * (~ended).float()
        if self.cfg.running_std_scaling:  # over every rank's scores: the same scale everywhere
            self.score_moments.update(distributed.all_cat(scores))
            scores = scores / max(float(self.score_moments.std), 1e-6)
        if self.cfg.reward_clip:
            scores = clip_scores(scores, self.cfg.reward_clip)
        return scores

    def optimizer_step(self, loss: torch.Tensor) -> float:
        """Backward, clip, step; a non-finite loss skips the step so NaN never reaches weights."""
        if distributed.any_rank(not torch.isfinite(loss)):  # every rank skips, or none
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            return math.nan
        loss.backward()
        return self.apply_gradients()

    def apply_gradients(self) -> float:
        """Clip the accumulated gradients and step; returns the pre-clip norm.

        With several processes the gradients are first averaged over them, so every rank
        takes the same step."""
        params = [p for p in self.policy.parameters() if p.requires_grad]
        sharded, whole = sharding.sharded_params(params)
        distributed.average_gradients(whole)  # FSDP averaged the sharded ones already
        if sharded:
            norm = sharding.clip_grad_norm(params, self.max_grad_norm or math.inf)
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm or math.inf)
        if torch.isfinite(norm):
            self.optimizer.step()
            self.optimizer_steps += 1
        else:
            self.skipped_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    @property
    def one_pass(self) -> bool:
        """True when the update makes exactly one gradient pass over the whole batch: its
        own forward, before the weights move, then gives the sampling policy's logprobs,
        so the rollout skips its policy forward (`generate_rollout(score_policy=False)`)."""
        return False

    def policy_logprobs(self, rollout, rows, entropy: bool = False):
        """Current logprobs of the sampled tokens for some rows (with gradients); with
        `entropy`, also the per-token entropy (with gradients only when the loss has an
        entropy bonus, `algorithm.entropy_coef`)."""
        with autocast(self.device, self.dtype):
            logits = self.policy.response_outputs(
                rollout.query_response[rows], rollout.attention_mask[rows], rollout.prompt_len
            ).logits
        logits = logits.float() / self.temperature
        logp = logprobs_from_logits(logits, rollout.response[rows])
        if not entropy:
            return logp
        with torch.set_grad_enabled(bool(self.cfg.entropy_coef) and torch.is_grad_enabled()):
            return logp, entropy_from_logits(logits)

    def loss_mask(self, rollout) -> torch.Tensor:
        """The response mask the policy loss sees: without the completions cut off by the
        length limit when `algorithm.mask_truncated_completions` (DAPO)."""
        if not self.cfg.mask_truncated_completions:
            return rollout.mask
        return rollout.mask * rollout.ended.to(rollout.mask.dtype).unsqueeze(1)

    def entropy_bonus(self, entropy: torch.Tensor, mask: torch.Tensor, tokens) -> torch.Tensor:
        """-entropy_coef x the entropy summed over `mask`'s tokens / `tokens`: subtracted
        from the loss, it rewards keeping the distribution spread (Mnih et al. 2016)."""
        return -self.cfg.entropy_coef * masked_sum(entropy, mask) / max(float(tokens), 1.0)

    def sampling_logprobs_from_update(self, rollout, rows):
        """For a one-pass update (`one_pass`), before the weights move: (current logprobs
        of `rows` with gradients, their entropy or None), stored detached in the rollout as
        the sampling policy's, with the entropy (rows in update order). The entropy comes
        back only for an entropy bonus, with gradients."""
        logp, entropy = self.policy_logprobs(rollout, rows, entropy=True)
        rollout.logprobs = torch.empty_like(logp)
        rollout.logprobs[rows] = logp.detach()
        rollout.entropy = torch.empty_like(entropy)
        rollout.entropy[rows] = entropy.detach()
        return logp, (entropy if self.cfg.entropy_coef else None)

    def is_weights(self, rollout) -> torch.Tensor | None:
        """The truncated importance weights [B, R] (detached) that the per-token
        policy-gradient loss is multiplied by when a sampling copy drew the tokens
        (`rollout.sampler_logprobs`; `algorithm.is_clip_max`); None when the policy drew
        them itself, and the loss is as it always was."""
        if rollout.sampler_logprobs is None:
            return None
        return truncated_is_weights(
            rollout.logprobs, rollout.sampler_logprobs, rollout.mask, self.cfg.is_clip_max
        )

    def minibatch_outputs(self, rollout, rows):
        """(logprobs with gradients, entropy with gradients or None) of some rows."""
        if self.cfg.entropy_coef:
            return self.policy_logprobs(rollout, rows, entropy=True)
        return self.policy_logprobs(rollout, rows), None

    def accumulated_step(self, rollout, minibatch_loss, first=None) -> tuple[float, float]:
        """One optimiser step with gradients accumulated over minibatches (bounded memory).

        `minibatch_loss(logprobs, entropy, rows)` returns that slice's share of the batch
        loss (entropy None without an entropy bonus). `first`: the whole batch's
        (logprobs, entropy), already taken with gradients, for one minibatch.
        Returns (loss, gradient norm); a non-finite loss skips the step.
        """
        batch = rollout.mask.shape[0]
        size = batch if first is not None else math.ceil(batch / self.cfg.minibatches)
        total = 0.0
        for start in range(0, batch, size):
            rows = slice(start, start + size)
            logp, entropy = first if first is not None else self.minibatch_outputs(rollout, rows)
            loss = minibatch_loss(logp, entropy, rows)
            # A sharded model's backward is a collective: every rank takes it (a non-finite
            # loss is then skipped below, on every rank).
            if torch.isfinite(loss) or sharding.active(self.policy.lm):
                loss.backward()
            total += float(loss.detach())
        if not distributed.any_rank(not math.isfinite(total)):
            return total, self.apply_gradients()
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        return total, math.nan

    def finish_update(self, rollout) -> tuple[torch.Tensor, dict[str, float]]:
        """Scheduler and KL-controller bookkeeping shared by every algorithm.

        Returns the per-token k1 KL [B, R] and the KL metrics (coefficient before the update).
        """
        with warnings.catch_warnings():  # the schedule counts updates, skipped ones too
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            self.scheduler.step()
        kl = kl_k1(rollout.logprobs, rollout.ref_logprobs) * rollout.mask
        kl_per_seq = float(distributed.mean(kl.sum(1)))  # over all ranks: one KL coefficient
        coef = self.kl_ctl.value
        # The controller counts completions of the whole batch, every process's (as TRL and
        # OpenRLHF do): per process it would adapt W times slower under W processes.
        self.kl_ctl.update(kl_per_seq, rollout.mask.shape[0] * distributed.world_size())
        metrics = {"objective/kl": kl_per_seq, "objective/kl_coef": coef}
        if rollout.sampler_logprobs is not None:
            metrics.update(
                sampler_mismatch(
                    rollout.logprobs, rollout.sampler_logprobs, rollout.mask, self.cfg.is_clip_max
                )
            )
        return kl.detach(), metrics

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {
            "kl_ctl": self.kl_ctl.state_dict(),
            "score_moments": self.score_moments.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        self.score_moments.load_state_dict(state["score_moments"])
