"""The user's own reward files: loading one (``loader``), and running it in a warm worker
process (``sandbox`` in the trainer, ``worker`` in the child).

Nothing is imported here: the worker process imports ``core.rewards.user_code.worker`` and
must stay small (no torch, no built-ins' dependencies) under its memory limit.
"""
