"""Sampling completions and scoring them: the rollout."""
