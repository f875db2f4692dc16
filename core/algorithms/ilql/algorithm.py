"""The ILQL update: online from the policy's own rollouts through a replay buffer, or
offline from a rated data set."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch

from core.algorithms.base import HEADS_STATE_KEY, Algorithm, UpdateResult
from core.algorithms.ilql.decoding import ilql_generate
from core.algorithms.ilql.export import export_heads
from core.algorithms.ilql.heads import ILQLHeads
from core.algorithms.ilql.losses import IlqlLossWeights, ilql_losses, terminal_rewards
from core.algorithms.ilql.offline import rated_transitions
from core.algorithms.ilql.replay import ReplayBuffer, TokenBatch, Transition, collate
from core.config import RunConfig
from core.lm.device import autocast


class ILQL(Algorithm):
    """ILQL updates from a batch of token sequences with sequence rewards.

    Offline: each step's batch comes from the rated data set. Online: the step's rollouts
    join a replay buffer and `updates_per_step` minibatches are drawn from it. The target
    Q heads follow the Q heads by Polyak averaging after every gradient step.
    """

    fsdp_unsupported = (
        "ILQL runs data parallel (torchrun / accelerate without FSDP), not with FSDP: "
        "its own sampling loop does not keep the processes in step"
    )

    def __init__(self, *args, ilql, seed: int, pad_id: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ilql, self.pad_id = ilql, pad_id
        self.buffer = ReplayBuffer(ilql.replay_size, seed)

    # ---- what ILQL needs besides an update (the hooks of `Algorithm`) -----------------

    @classmethod
    def options(cls, cfg: RunConfig, models) -> dict:
        return {
            "ilql": cfg.ilql,
            "seed": cfg.training.seed,
            "pad_id": models.tokenizer.pad_token_id,
        }

    @classmethod
    def heads_factory(cls, cfg: RunConfig):
        return functools.partial(ILQLHeads, two_qs=cfg.ilql.two_qs)

    @classmethod
    def param_groups(cls, policy, cfg: RunConfig) -> list[dict]:
        # Fresh ILQL heads learn faster than a pretrained LM should move: their own rate.
        own = {id(p) for p in policy.heads.parameters()}
        trained = [p for p in policy.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trained if id(p) not in own]}]
        heads = [p for p in trained if id(p) in own]
        if heads:
            lr = cfg.training.learning_rate * cfg.ilql.heads_lr_scale
            groups.append({"params": heads, "lr": lr})
        return groups

    @classmethod
    def decoder(cls, cfg: RunConfig, explore: bool = True):
        def decode(models, input_ids, attention_mask, gen, end_ids, control):
            heads = models.policy.heads
            return ilql_generate(
                models, heads, input_ids, attention_mask, gen, cfg.ilql, end_ids, control, explore
            )

        return decode

    @classmethod
    def offline_data(cls, cfg: RunConfig, tokenizer) -> list[Transition] | None:
        return rated_transitions(cfg, tokenizer) if cfg.ilql.mode == "offline" else None

    @classmethod
    def export_extras(cls, cfg: RunConfig, trainer_state: dict, out: Path) -> None:
        if trainer_state.get(HEADS_STATE_KEY) is not None:
            export_heads(trainer_state[HEADS_STATE_KEY], out, cfg.ilql.beta)

    # ---- the update --------------------------------------------------------------------

    @property
    def heads(self) -> ILQLHeads:
        return self.policy.heads

    def _loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        with autocast(self.device, self.dtype):
            out = self.policy.response_outputs(
                batch.query_response, batch.attention_mask, batch.prompt_len, want_hidden=True
            )
            qs, target_qs, v = self.heads(out.hidden)
        return ilql_losses(
            qs,
            target_qs,
            v,
            out.logits.float() / self.temperature,
            batch.response,
            terminal_rewards(batch.scores, batch.mask),
            batch.mask,
            IlqlLossWeights.of(self.ilql),
        )

    @torch.no_grad()
    def token_advantages(self, batch) -> torch.Tensor:
        """min target Q(s, a) - V(s) of the taken tokens: what the heads think each token added."""
        out = self.policy.response_outputs(
            batch.query_response, batch.attention_mask, batch.prompt_len, want_hidden=True
        )
        _qs, target_qs, v = self.heads(out.hidden)
        q = torch.stack([t.float() for t in target_qs]).min(0).values
        taken = q.gather(-1, batch.response.clamp(min=0)[..., None]).squeeze(-1)
        return (taken - v.float()) * batch.mask

    def update(self, rollout, scores: torch.Tensor) -> UpdateResult:
        """Online: the rollout joins the replay buffer, and the heads and the LM fit
        `updates_per_step` minibatches drawn from it."""
        # Standardised by running moments, as the offline data set is as a whole.
        self.score_moments.update(scores)
        z = (scores - self.score_moments.mean) / max(self.score_moments.std, 1e-8)
        self.buffer.extend(transitions(rollout, z))
        draws = [
            collate(self.buffer.sample(rollout.mask.shape[0]), self.pad_id, self.device)
            for _ in range(self.ilql.updates_per_step)
        ]
        metrics = self._fit(draws)
        advantages = self.token_advantages(rollout)
        kl, kl_metrics = self.finish_update(rollout)
        metrics.update(kl_metrics)
        return self._result(metrics, advantages, kl)

    def offline_update(self, items: Sequence[Transition]) -> tuple[UpdateResult, TokenBatch]:
        """Offline: one fit on a batch of the rated data set (no KL: nothing was sampled)."""
        batch = collate(list(items), self.pad_id, self.device)
        metrics = self._fit([batch])
        advantages = self.token_advantages(batch)
        self.scheduler.step()
        return self._result(metrics, advantages, torch.zeros_like(batch.mask)), batch

    def _fit(self, draws: list[TokenBatch]) -> dict[str, float]:
        """One optimiser step per minibatch, the target heads following; mean metrics."""
        sums: dict[str, float] = {}
        for minibatch in draws:
            loss, stats = self._loss(minibatch)
            sums["policy/grad_norm"] = sums.get("policy/grad_norm", 0.0) + self.optimizer_step(loss)
            self.heads.sync_target(self.ilql.polyak)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        return {key: value / len(draws) for key, value in sums.items()}

    def _result(self, metrics: dict[str, float], advantages, kl) -> UpdateResult:
        metrics["ilql/buffer_size"] = float(len(self.buffer))
        metrics["loss/policy"] = metrics["loss/awac"]  # the term that trains the LM itself
        return UpdateResult(metrics, advantages, kl)

    def state_dict(self) -> dict:
        return dict(super().state_dict(), buffer=self.buffer.state_dict())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])


def transitions(rollout, scores: torch.Tensor) -> list[Transition]:
    """A rollout's rows as replay items: prompt without its left padding, response to its end."""
    items = []
    for i in range(rollout.mask.shape[0]):
        prompt = rollout.query_response[i, : rollout.prompt_len]
        prompt = prompt[rollout.attention_mask[i, : rollout.prompt_len].bool()]
        response = rollout.response[i][rollout.mask[i].bool()]
        items.append(Transition(tuple(prompt.tolist()), tuple(response.tolist()), float(scores[i])))
    return items
