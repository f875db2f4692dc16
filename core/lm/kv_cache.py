"""The KV cache's keyword across transformers versions: 5.2x renamed forward's
`past_key_values` to `cache` (and the output's field likewise); the old name warns on
every run and goes in 5.40, while older releases know only the old one."""

from __future__ import annotations

import functools
import inspect


@functools.cache
def _release_keyword() -> str:
    """The name this transformers release uses, read off its reference model (Llama)."""
    from transformers import LlamaForCausalLM

    params = inspect.signature(LlamaForCausalLM.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@functools.cache
def _keyword(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return _release_keyword()  # forward(**kwargs): a wrapper passing them on


def cache_kwarg(lm, cache) -> dict:
    """{keyword: cache} for `lm(...)`; a peft wrapper passes it on to its base model."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return {_keyword(type(base)): cache}


def cache_of(out):
    """The KV cache a forward with use_cache=True returned (None when it returned none)."""
    if "cache" in getattr(type(out), "__dataclass_fields__", {}):
        return out.cache
    return getattr(out, "past_key_values", None)
