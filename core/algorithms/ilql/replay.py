"""Token sequences with a reward, batched for Q-learning: the online replay buffer and
the offline rated data set share this form."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Transition:
    """One completed response: prompt and response token ids and the sequence reward."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    reward: float


@dataclass
class TokenBatch:
    query_response: torch.Tensor  # [B, P + R], prompts left-padded, responses right-padded
    attention_mask: torch.Tensor
    prompt_len: int
    mask: torch.Tensor  # [B, R] float
    scores: torch.Tensor  # [B]

    @property
    def response(self) -> torch.Tensor:
        return self.query_response[:, self.prompt_len :]


def collate(items: list[Transition], pad_id: int, device) -> TokenBatch:
    """Left-pad the prompts and right-pad the responses, as generation lays them out."""
    p = max(len(t.prompt_ids) for t in items)
    r = max(max(len(t.response_ids) for t in items), 1)
    ids = torch.full((len(items), p + r), pad_id, dtype=torch.long)
    attn = torch.zeros((len(items), p + r), dtype=torch.long)
    for i, t in enumerate(items):
        ids[i, p - len(t.prompt_ids) : p] = torch.tensor(t.prompt_ids, dtype=torch.long)
        ids[i, p : p + len(t.response_ids)] = torch.tensor(t.response_ids, dtype=torch.long)
        attn[i, p - len(t.prompt_ids) : p + len(t.response_ids)] = 1
    scores = torch.tensor([t.reward for t in items], dtype=torch.float32)
    return TokenBatch(
        ids.to(device), attn.to(device), p, attn[:, p:].float().to(device), scores.to(device)
    )


class ReplayBuffer:
    """The newest `capacity` transitions; uniform sampling with its own seeded RNG so a
    resumed run draws the same minibatches."""

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = capacity
        self.items: list[Transition] = []
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.items)

    def extend(self, items: list[Transition]) -> None:
        self.items.extend(items)
        del self.items[: max(0, len(self.items) - self.capacity)]

    def sample(self, n: int) -> list[Transition]:
        return self.rng.sample(self.items, min(n, len(self.items)))

    def state_dict(self) -> dict:
        return {
            "items": [(t.prompt_ids, t.response_ids, t.reward) for t in self.items],
            "rng": self.rng.getstate(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.items = [Transition(tuple(p), tuple(r), float(w)) for p, r, w in state["items"]]
        self.rng.setstate(state["rng"])
