"""Built-in rewards a user picks without writing code: the registry (``builtins``) and the
plain-text, format, answer, reference-metric and embedding rewards it registers.

Nothing is imported here: ``core.rewards.BUILTINS`` (the lazy face) or
``core.rewards.builtin.builtins`` loads the registry when it is first used.
"""
