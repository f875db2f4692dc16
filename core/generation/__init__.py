"""Sampling completions and scoring them: our KV-cache sampler (`sampler`) and the
rollout (`rollout`: sampled ids, masks, policy and reference logprobs, values)."""

from core.generation.rollout import Decode, Rollout, generate_rollout
from core.generation.sampler import sample

__all__ = ["Decode", "Rollout", "generate_rollout", "sample"]
