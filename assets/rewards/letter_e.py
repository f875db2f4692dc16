"""Reward the share of characters that are the letter "e" (either case).

A deliberately easy target: a model learns it within a few steps, which makes
it a quick check that training moves the reward at all.
"""


def reward(prompt: str, completion: str, **columns) -> float:
    if not completion:
        return 0.0
    return sum(1 for ch in completion if ch in "eE") / len(completion)
