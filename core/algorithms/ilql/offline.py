"""Offline ILQL's data: a rated data set (prompt, completion, reward rows) tokenised as the
policy would have produced it."""

from __future__ import annotations

import dataclasses

import numpy as np

from core.algorithms.ilql.replay import Transition
from core.config import RunConfig
from core.data import format_prompt, load_rated


def rated_transitions(cfg: RunConfig, tok) -> list[Transition]:
    """The offline data set tokenised as the policy would have produced it."""
    end = [tok.eos_token_id] if tok.eos_token_id is not None else []
    items = []
    for row in load_rated(cfg.ilql.dataset, cfg.base_dir):
        prompt = format_prompt(tok, row["prompt"], cfg.data.chat_template)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"][-cfg.data.max_prompt_tokens :]
        c_ids = tok(row["completion"], add_special_tokens=False)["input_ids"]
        # As generation lays a completion out: one that stopped before the length limit
        # ended with EOS; one that reached it was cut there, with no EOS the policy never
        # chose (an appended one would be the costliest token of every row to imitate).
        limit = cfg.generation.max_new_tokens
        c_ids = c_ids + end if len(c_ids) < limit else c_ids[:limit]
        items.append(Transition(tuple(p_ids), tuple(c_ids), float(row["reward"])))
    # Standardised rewards: Q - V is then in units of the data's spread, so beta means
    # the same on every task.
    rewards = np.array([t.reward for t in items])
    mean, std = rewards.mean(), max(rewards.std(), 1e-8)
    return [dataclasses.replace(t, reward=float((t.reward - mean) / std)) for t in items]
