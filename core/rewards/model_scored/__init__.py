"""Rewards scored by a second model: the AI judge (``judge``) and a sequence-classification
reward model (``reward_model``), both built on ``scorer`` (one frozen model per process,
batching, the (prompt, completion) cache, the shared device and batch parameters).

Nothing is imported here, so that naming the package loads neither torch nor transformers.
"""
