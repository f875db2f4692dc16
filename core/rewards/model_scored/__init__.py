"""Rewards scored by a second model: the AI judge (``judge``) and a sequence-classification
reward model (``reward_model``).

Nothing is imported here, so that naming the package loads neither torch nor transformers.
"""
