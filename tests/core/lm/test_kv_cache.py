"""The KV cache's keyword follows the installed transformers: `cache` where forward takes
it (5.2x on), `past_key_values` before."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from transformers import LlamaForCausalLM

from core.lm.kv_cache import cache_kwarg, cache_of
from core.lm.sources import load_lm


class _Old:
    def forward(self, input_ids, past_key_values=None, use_cache=None): ...


class _New:
    def forward(self, input_ids, cache=None, use_cache=None): ...


class _KwargsOnly:  # a forward that names neither: this release's name
    def forward(self, input_ids, **kwargs): ...


@dataclass
class _OldOutput:
    past_key_values: object = None


@dataclass
class _NewOutput:
    cache: object = None


class _Wrapped:  # as peft's PeftModel: forward(**kwargs), the base model behind it
    def __init__(self, base):
        self.base = base

    def get_base_model(self):
        return self.base

    def forward(self, **kwargs): ...


def test_the_keyword_is_the_one_the_model_s_forward_takes() -> None:
    assert cache_kwarg(_Old(), "kv") == {"past_key_values": "kv"}
    assert cache_kwarg(_New(), "kv") == {"cache": "kv"}
    assert cache_kwarg(_Wrapped(_New()), "kv") == {"cache": "kv"}
    release = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else None
    assert cache_kwarg(_KwargsOnly(), "kv") == {release or "past_key_values": "kv"}
    assert cache_of(_OldOutput("kv")) == "kv"
    assert cache_of(_NewOutput("kv")) == "kv"
    assert cache_of(_NewOutput(None)) is None


def test_a_cache_from_the_real_model_feeds_the_next_token() -> None:
    import torch

    lm = load_lm("tiny-random")[0].eval()
    # The installed transformers (5.24 here) takes `cache`: no deprecated name is passed.
    if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters:
        assert list(cache_kwarg(lm, None)) == ["cache"]
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        whole = lm(input_ids=ids).logits[:, -1]
        head = lm(input_ids=ids[:, :3], use_cache=True)
        tail = lm(input_ids=ids[:, 3:], use_cache=True, **cache_kwarg(lm, cache_of(head)))
    assert torch.allclose(tail.logits[:, -1], whole, atol=1e-4, rtol=1e-4)
