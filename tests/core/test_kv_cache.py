"""The KV cache's keyword follows the installed transformers: `cache` where forward takes
it (5.2x on), `past_key_values` before."""

from __future__ import annotations

from types import SimpleNamespace

from core.kv_cache import cache_kwarg, cache_of
from core.models import load_lm


class _Old:
    def forward(self, input_ids, past_key_values=None, use_cache=None): ...


class _New:
    def forward(self, input_ids, cache=None, use_cache=None): ...


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
    assert cache_of(SimpleNamespace(past_key_values="kv")) == "kv"
    assert cache_of(SimpleNamespace(cache="kv", past_key_values=None)) == "kv"


def test_a_cache_from_the_real_model_feeds_the_next_token() -> None:
    import torch

    lm = load_lm("tiny-random")[0].eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        whole = lm(input_ids=ids).logits[:, -1]
        head = lm(input_ids=ids[:, :3], use_cache=True)
        tail = lm(input_ids=ids[:, 3:], use_cache=True, **cache_kwarg(lm, cache_of(head)))
    assert torch.allclose(tail.logits[:, -1], whole, atol=1e-4, rtol=1e-4)
