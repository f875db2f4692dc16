from __future__ import annotations

import threading

import pytest
import torch

from core.config import GenerationConfig, ModelConfig
from core.control import Control, Stopped
from core.generation.rollout import GenerationGate, generate_rollout, response_mask
from core.lm.device import ModelError, resolve_device, resolve_dtype
from core.lm.forward import response_outputs
from core.lm.policy import load_models
from core.lm.sources import resolve_source


@pytest.fixture(scope="module")
def tiny():
    return load_models(ModelConfig(name="tiny-random"), value_head=True, seed=0)


def test_device_and_dtype_auto_on_this_machine():
    device = resolve_device("auto")
    assert device.type in ("cpu", "cuda", "mps")
    if device.type == "cpu":
        assert resolve_dtype(device, "auto") == torch.float32
    assert resolve_dtype(device, "bfloat16") == torch.bfloat16


def test_missing_paths_and_non_models_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="model path not found: ./nope"):
        resolve_source("./nope")
    with pytest.raises(ModelError, match="model path not found"):
        resolve_source(str(tmp_path / "missing.gguf"))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelError, match="is not a model"):
        resolve_source(str(text))
    with pytest.raises(ModelError, match="is not a model"):
        resolve_source(str(tmp_path))  # a folder without config.json
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not really gguf")
    with pytest.raises(ModelError, match="not a model transformers can read"):
        resolve_source(str(fake))


def test_tiny_random_has_the_default_tokenizer_and_a_zero_value_head(tiny):
    assert len(tiny.tokenizer) == 49152
    assert tiny.tokenizer.padding_side == "left"
    assert tiny.policy.v_head is not None
    assert torch.count_nonzero(tiny.policy.v_head.weight) == 0
    assert tiny.reference.lm is not None  # a frozen copy without LoRA
    assert not any(p.requires_grad for p in tiny.reference.lm.parameters())


def test_response_mask_ends_at_the_first_end_token():
    response = torch.tensor([[5, 6, 2, 2], [5, 2, 7, 2], [5, 6, 7, 8]])
    mask, ended = response_mask(response, [2])
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert ended.tolist() == [True, True, False]


def test_rollout_logprobs_match_what_generate_sampled_from(tiny):
    """Left padding: the scoring forward must see the same positions generate() did."""
    tok, lm = tiny.tokenizer, tiny.policy.lm
    enc = tok(["Once upon a time there was a", "Hi"], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = lm.generate(
        **enc,
        do_sample=True,
        max_new_tokens=6,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=tok.pad_token_id,
    )
    p = enc["input_ids"].shape[1]
    gen_logp = (
        torch.log_softmax(torch.stack(out.logits, 1).float(), -1)
        .gather(-1, out.sequences[:, p:, None])
        .squeeze(-1)
    )
    attention = torch.cat([enc["attention_mask"], torch.ones_like(out.sequences[:, p:])], 1)
    with torch.no_grad():
        logits = response_outputs(lm, out.sequences, attention, p).logits.float()
    fwd_logp = torch.log_softmax(logits, -1).gather(-1, out.sequences[:, p:, None]).squeeze(-1)
    torch.testing.assert_close(fwd_logp, gen_logp, atol=1e-4, rtol=1e-4)


def test_rollout_shapes_and_reference_equals_policy_before_training(tiny):
    torch.manual_seed(0)
    r = generate_rollout(
        tiny,
        ["Once upon a time", "The ship"],
        GenerationConfig(max_new_tokens=5),
        max_prompt_tokens=64,
    )
    assert r.logprobs.shape == r.ref_logprobs.shape == r.values.shape == r.mask.shape
    assert r.mask.shape == (2, 5)
    torch.testing.assert_close(r.logprobs, r.ref_logprobs)
    assert len(r.completions) == 2 and all(isinstance(c, str) for c in r.completions)


def test_lora_reference_is_the_policy_with_its_adapter_off():
    models = load_models(ModelConfig(name="tiny-random", lora_r=4), value_head=False, seed=0)
    assert models.reference.lm is None  # no second copy of the weights
    trainable = [n for n, p in models.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    ids = models.tokenizer(["Hello there"], return_tensors="pt")
    with torch.no_grad():
        for n, p in models.policy.lm.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)  # make the adapter matter
        ref = models.reference.response_logits(ids["input_ids"], ids["attention_mask"], 1)
        pol = models.policy.response_outputs(ids["input_ids"], ids["attention_mask"], 1).logits
    assert not torch.allclose(ref, pol)
    base = load_models(ModelConfig(name="tiny-random"), value_head=False, seed=0)
    with torch.no_grad():
        plain = base.policy.response_outputs(ids["input_ids"], ids["attention_mask"], 1).logits
    torch.testing.assert_close(ref, plain)


def test_stop_ends_generation_between_tokens(tiny):
    control = Control()
    control.stop()
    with pytest.raises(Stopped):
        generate_rollout(tiny, ["Once"], GenerationConfig(max_new_tokens=200), 64, control)


def test_pause_holds_generation_until_resumed():
    control = Control()
    gate = GenerationGate(control)
    control.pause()
    done = []
    t = threading.Thread(
        target=lambda: done.append(gate(torch.zeros(1, 1, dtype=torch.long), None))
    )
    t.start()
    t.join(0.3)
    assert not done  # still held
    control.resume()
    t.join(5)
    assert done and done[0].tolist() == [False]


def test_stop_strings_end_a_completion_and_its_mask(tiny):
    gen = GenerationConfig(max_new_tokens=12)
    torch.manual_seed(5)
    free = generate_rollout(tiny, ["Once upon a time"], gen, 64)
    tokens = [tiny.tokenizer.decode([t]) for t in free.response[0].tolist()]
    stop = tokens[3].strip() or tokens[3]
    assert stop and stop not in "".join(tokens[:3])
    torch.manual_seed(5)  # the same samples, now cut at the stop string
    cut = generate_rollout(
        tiny, ["Once upon a time"], GenerationConfig(max_new_tokens=12, stop=(stop,)), 64
    )
    assert bool(cut.ended[0]) and not bool(free.ended[0])
    assert int(cut.mask.sum()) == 4
    assert cut.completions[0].endswith(stop)


def test_cpu_bf16_hint_only_for_float32_on_a_cpu_with_bf16_instructions(monkeypatch):
    import core.lm.device

    cpu = torch.device("cpu")
    monkeypatch.setattr(core.lm.device, "cpu_bf16_native", lambda: True)
    assert 'model.dtype = "bfloat16"' in core.lm.device.cpu_bf16_hint(cpu, torch.float32)
    assert core.lm.device.cpu_bf16_hint(cpu, torch.bfloat16) is None
    assert core.lm.device.cpu_bf16_hint(torch.device("cuda"), torch.float32) is None
    monkeypatch.setattr(core.lm.device, "cpu_bf16_native", lambda: False)
    assert core.lm.device.cpu_bf16_hint(cpu, torch.float32) is None
