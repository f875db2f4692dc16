"""Our sampling loop (core.sampling) against generate() and the softmax it samples from."""

from __future__ import annotations

import pytest
import torch

from core.config import GenerationConfig, ModelConfig
from core.control import Control, Stopped
from core.generation.rollout import (
    _end_ids,
    generate_rollout,
    response_logits_shared,
    response_mask,
)
from core.generation.sampler import sample
from core.lm.forward import position_ids_for, response_outputs
from core.lm.policy import load_models


@pytest.fixture(scope="module")
def tiny():
    return load_models(ModelConfig(name="tiny-random"), value_head=False, seed=0)


def encode(tiny, prompts):
    return tiny.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)


PROMPTS = ["Once upon a time there was a", "Hi", "Once upon a time there was a", "The ship"]


def test_greedy_equals_generate_greedy_with_padding_and_shared_prompts(tiny):
    tok, lm = tiny.tokenizer, tiny.policy.lm.eval()
    enc = encode(tiny, PROMPTS)
    ends = _end_ids(tok, lm)
    ours = sample(
        lm,
        enc["input_ids"],
        enc["attention_mask"],
        GenerationConfig(max_new_tokens=12, top_k=1),
        ends,
        tok.pad_token_id,
    )
    with torch.no_grad():
        theirs = lm.generate(
            **enc,
            do_sample=False,
            max_new_tokens=12,
            pad_token_id=tok.pad_token_id,
            eos_token_id=ends,
        )
    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize("top_k", [0, 5])
def test_sampled_frequencies_match_the_softmax(tiny, top_k):
    tok, lm = tiny.tokenizer, tiny.policy.lm.eval()
    enc = encode(tiny, ["Once upon a time"])
    with torch.no_grad():
        logits = lm(**enc, position_ids=position_ids_for(enc["attention_mask"])).logits[0, -1]
    temperature = 0.8
    probs = torch.softmax(logits / temperature, -1)
    if top_k:
        kept = torch.topk(probs, top_k).indices
        probs = torch.zeros_like(probs).scatter(0, kept, probs[kept])
        probs = probs / probs.sum()
    n, rows = 4000, 500  # one prompt repeated: one prefill per call, 500 first tokens each
    torch.manual_seed(1234)
    firsts = [
        sample(
            lm,
            enc["input_ids"].repeat(rows, 1),
            enc["attention_mask"].repeat(rows, 1),
            GenerationConfig(max_new_tokens=1, temperature=temperature, top_k=top_k),
            _end_ids(tok, lm),
            tok.pad_token_id,
        )[:, -1]
        for _ in range(n // rows)
    ]
    freq = torch.bincount(torch.cat(firsts), minlength=probs.numel()).float() / n
    assert probs.max() < 0.9  # a distribution worth testing
    if top_k:
        assert freq[probs == 0].sum() == 0  # nothing outside the top k
    # Five standard errors per token: a fixed seed, and far from a coin flip.
    tolerance = 5 * (probs * (1 - probs) / n).sqrt() + 1e-3
    assert bool(((freq - probs).abs() <= tolerance).all()), (freq - probs).abs().max()


class _StopAfter(Control):
    """Asks for a stop at its n-th check, as a user pressing Stop mid-generation."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.checks = n, 0

    def wait_while_paused(self, timeout=None) -> bool:
        self.checks += 1
        if self.checks == self.n:
            self.stop()
        return super().wait_while_paused(timeout)


def test_a_stop_in_the_middle_raises_stopped_between_tokens(tiny):
    control = _StopAfter(4)
    with pytest.raises(Stopped):
        generate_rollout(tiny, ["Once"], GenerationConfig(max_new_tokens=200), 64, control)
    assert control.checks == 4  # it did not run on to the end
    # The stop came inside the packed-weights block: the model's own forwards are back.
    assert not [m for m in tiny.policy.lm.modules() if "forward" in m.__dict__]


def test_rows_that_end_early_are_padded_and_masked(tiny):
    tok, lm = tiny.tokenizer, tiny.policy.lm.eval()
    enc = encode(tiny, ["Hi", "The ship"])
    greedy = GenerationConfig(max_new_tokens=10, top_k=1)
    pad, p = tok.pad_token_id, enc["input_ids"].shape[1]
    free = sample(lm, enc["input_ids"], enc["attention_mask"], greedy, [pad], pad)[:, p:]
    end = int(free[0, 2])  # row 0 ends at its third token when that is an end id
    first = free[0].tolist().index(end)
    assert end not in free[1].tolist(), "pick prompts whose greedy paths differ"
    out = sample(lm, enc["input_ids"], enc["attention_mask"], greedy, [end, pad], pad)[:, p:]
    assert out[0, : first + 1].tolist() == free[0, : first + 1].tolist()
    assert (out[0, first + 1 :] == pad).all()
    assert out[1].tolist() == free[1].tolist()  # the other row goes on as if alone
    mask, ended = response_mask(out, [end, pad])
    assert mask[0].tolist() == [1.0] * (first + 1) + [0.0] * (10 - first - 1)
    assert bool(ended[0]) and mask[1].sum() == 10


def test_generate_sampler_is_still_available(tiny):
    torch.manual_seed(0)
    gen = GenerationConfig(max_new_tokens=5, sampler="generate")
    r = generate_rollout(tiny, ["Once upon a time"] * 2, gen, 64)
    assert r.mask.shape == (2, 5) and len(r.completions) == 2


def test_shared_prompt_scoring_equals_one_full_forward(tiny):
    """The reference / policy scoring runs each distinct prompt once: same logits, hidden."""
    tok, lm = tiny.tokenizer, tiny.policy.lm.eval()
    enc = encode(tiny, PROMPTS)
    torch.manual_seed(0)
    ids = sample(
        lm,
        enc["input_ids"],
        enc["attention_mask"],
        GenerationConfig(max_new_tokens=8),
        [tok.eos_token_id],
        tok.pad_token_id,
    )
    p = enc["input_ids"].shape[1]
    mask, _ = response_mask(ids[:, p:], [tok.eos_token_id])
    attention = torch.cat([enc["attention_mask"], mask.long()], 1)
    with torch.no_grad():
        full = response_outputs(lm, ids, attention, p, want_hidden=True)
        logits, hidden = response_logits_shared(lm, ids, attention, p, want_hidden=True)
    keep = mask.bool()  # positions after a row's end are never scored
    torch.testing.assert_close(logits[keep], full.logits[keep], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(hidden[keep], full.hidden[keep], atol=1e-4, rtol=1e-4)
    # With the last token's own position too (the state after it): one more column.
    with torch.no_grad():
        full = response_outputs(lm, ids, attention, p, final_hidden=True)
        logits, more = response_logits_shared(lm, ids, attention, p, final_hidden=True)
    assert more.shape[1] == hidden.shape[1] + 1 == full.hidden.shape[1]
    torch.testing.assert_close(logits[keep], full.logits[keep], atol=1e-4, rtol=1e-4)
    keep = torch.cat([torch.ones_like(keep[:, :1]), keep], 1)
    torch.testing.assert_close(more[keep], full.hidden[keep], atol=1e-4, rtol=1e-4)


def test_rollout_values_after_the_last_token_read_the_whole_completion():
    """`Rollout.final_values`: the value head at each row's last real token, whose state
    has read all of it (the bootstrap of a cut completion); `values` stay one position
    earlier. PROMPTS repeats one, so the shared-prompt scoring is the one checked."""
    models = load_models(ModelConfig(name="tiny-random"), value_head=True, seed=0)
    torch.nn.init.normal_(models.policy.v_head.weight, std=0.5)
    torch.manual_seed(0)
    r = generate_rollout(models, PROMPTS, GenerationConfig(max_new_tokens=6), 64)
    p, v_head = r.prompt_len, models.policy.v_head
    with torch.no_grad():
        full = models.policy.response_outputs(r.query_response, r.attention_mask, p)
        hidden = models.policy.lm(
            input_ids=r.query_response,
            attention_mask=r.attention_mask,
            position_ids=position_ids_for(r.attention_mask),
            output_hidden_states=True,
        ).hidden_states[-1]
    last = p + r.lengths.long() - 1
    want = v_head(hidden[torch.arange(len(PROMPTS)), last]).squeeze(-1)
    torch.testing.assert_close(r.final_values, want, atol=1e-4, rtol=1e-4)
    keep = r.mask.bool()
    torch.testing.assert_close(r.values[keep], full.values[keep], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_linears_give_the_dense_logits_and_put_the_model_back(tiny, dtype):
    from core.lm.device import autocast
    from core.lm.packed_linear import available, bf16_unpacked_reason, packed_linears

    lm = tiny.policy.lm.eval()
    enc = encode(tiny, PROMPTS)
    device = torch.device("cpu")

    def logits():
        with torch.no_grad(), autocast(device, dtype):
            return lm(**enc, position_ids=position_ids_for(enc["attention_mask"])).logits.float()

    dense = logits()
    with packed_linears(lm, len(PROMPTS), dtype):
        patched = [m for m in lm.modules() if "forward" in m.__dict__]
        packed = logits()
    assert bool(patched) == (available(device) and bf16_unpacked_reason(device, dtype) is None)
    assert not [m for m in lm.modules() if "forward" in m.__dict__]  # all put back
    assert torch.equal(logits(), dense)
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2  # summation order; bf16 rounding
    assert (packed - dense).abs().max() <= tolerance * dense.abs().max()


def test_bfloat16_on_a_cpu_that_cannot_pack_it_samples_unpacked_and_says_so(tiny, monkeypatch):
    """An AVX2-only CPU refuses oneDNN's bf16 weight packing (a RuntimeError that used to end
    the run): there, sampling keeps the plain weights, and the run's log says why. Forced
    here, as this machine can pack."""
    from core.events import Log
    from core.lm.packed_linear import NO_BF16_PACKING, bf16_unpacked_reason, packed_linears
    from core.training.loop import train
    from tests.core.helpers import tiny_config

    monkeypatch.setenv(NO_BF16_PACKING, "1")
    cpu = torch.device("cpu")
    assert "AVX-512" in bf16_unpacked_reason(cpu, torch.bfloat16)
    assert bf16_unpacked_reason(cpu, torch.float32) is None  # float32 packs on any CPU
    lm = tiny.policy.lm
    with packed_linears(lm, 4, torch.bfloat16):
        assert not [m for m in lm.modules() if "forward" in m.__dict__]
    settings = {"model.device": "cpu", "model.dtype": "bfloat16", "training.steps": 1}
    events = list(train(tiny_config({**settings, "training.checkpoint_every": 0})))
    logs = [e.message for e in events if isinstance(e, Log)]
    assert any("plain bfloat16 weights" in m for m in logs), logs
    assert events[-1].state == "completed"


def test_packed_linears_leave_a_model_on_another_device_or_dtype_alone(tiny):
    from core.lm.packed_linear import packed_linears

    lm = tiny.policy.lm
    with packed_linears(lm, 4, torch.float16):
        assert not [m for m in lm.modules() if "forward" in m.__dict__]


def test_greedy_tokens_are_the_same_with_packed_weights(tiny):
    from core.lm.packed_linear import packed_linears

    tok, lm = tiny.tokenizer, tiny.policy.lm.eval()
    enc = encode(tiny, PROMPTS)
    args = (GenerationConfig(max_new_tokens=12, top_k=1), _end_ids(tok, lm), tok.pad_token_id)
    dense = sample(lm, enc["input_ids"], enc["attention_mask"], *args)
    with packed_linears(lm, len(PROMPTS), torch.float32):
        packed = sample(lm, enc["input_ids"], enc["attention_mask"], *args)
    assert packed.tolist() == dense.tolist()


def test_draw_keeps_zero_odds_at_zero_and_refuses_nan():
    from core.generation.sampler import draw

    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    torch.manual_seed(0)
    drawn = torch.stack([draw(probs) for _ in range(2000)])
    assert set(drawn[:, 0].tolist()) == {1, 3}
    assert 0.45 < (drawn[:, 0] == 1).float().mean() < 0.55
    assert set(drawn[:, 1].tolist()) == {3} and set(drawn[:, 2].tolist()) == {0}
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        draw(torch.tensor([[0.5, float("nan")]]))
