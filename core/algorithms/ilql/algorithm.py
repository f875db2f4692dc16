"""The ILQL update: online from the policy's own rollouts through a replay buffer, or
offline from a rated data set."""

from __future__ import annotations

import torch

from core.algorithms.base import Algorithm, UpdateResult
from core.algorithms.ilql.heads import ILQLHeads
from core.algorithms.ilql.losses import ilql_losses, terminal_rewards
from core.algorithms.ilql.replay import ReplayBuffer, Transition, collate
from core.lm.device import autocast


class ILQL(Algorithm):
    """ILQL updates from a batch of token sequences with sequence rewards.

    Offline: each step's batch comes from the rated data set. Online: the step's rollouts
    join a replay buffer and `updates_per_step` minibatches are drawn from it. The target
    Q heads follow the Q heads by Polyak averaging after every gradient step.
    """

    def __init__(self, *args, ilql, seed: int, pad_id: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ilql, self.pad_id = ilql, pad_id
        self.buffer = ReplayBuffer(ilql.replay_size, seed)

    @property
    def heads(self) -> ILQLHeads:
        return self.policy.ilql_heads

    def _loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        with autocast(self.device, self.dtype):
            out = self.policy.response_outputs(
                batch.query_response, batch.attention_mask, batch.prompt_len, want_hidden=True
            )
            qs, target_qs, v = self.heads(out.hidden)
        c = self.ilql
        return ilql_losses(
            qs,
            target_qs,
            v,
            out.logits.float() / self.temperature,
            batch.response,
            terminal_rewards(batch.scores, batch.mask),
            batch.mask,
            c.gamma,
            c.tau,
            c.cql_scale,
            c.awac_scale,
            c.beta,
            c.lam,
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

    def update(self, batch, scores: torch.Tensor) -> UpdateResult:
        online = self.ilql.mode == "online"  # batch is a Rollout, else a TokenBatch
        if online:
            # Standardised by running moments, as the offline data set is as a whole.
            self.score_moments.update(scores)
            z = (scores - self.score_moments.mean) / max(self.score_moments.std, 1e-8)
            self.buffer.extend(transitions(batch, z))
            draws = [
                collate(self.buffer.sample(batch.mask.shape[0]), self.pad_id, self.device)
                for _ in range(self.ilql.updates_per_step)
            ]
        else:
            draws = [batch]
        sums: dict[str, float] = {}
        for minibatch in draws:
            loss, stats = self._loss(minibatch)
            sums["policy/grad_norm"] = sums.get("policy/grad_norm", 0.0) + self.optimizer_step(loss)
            self.heads.sync_target(self.ilql.polyak)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        metrics = {key: value / len(draws) for key, value in sums.items()}
        advantages = self.token_advantages(batch)
        if online:
            kl, kl_metrics = self.finish_update(batch)
            metrics.update(kl_metrics)
        else:
            self.scheduler.step()
            kl = torch.zeros_like(batch.mask)
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
