"""Text-quality metrics: hand-counted diversity, BLEU/chrF/ROUGE-L on known pairs,
perplexity under a tiny llama, and the seeded held-out split."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from core.text_metrics import (
    bleu,
    chrf,
    distinct_n,
    perplexity,
    rouge_l,
    split_heldout,
    text_metrics,
)

# ---- distinct-n -------------------------------------------------------------------------


def test_distinct_n_hand_counted():
    texts = ["a b a", "b a"]
    # unigrams: a b a | b a -> 5 in all, distinct {a, b} = 2 -> 2/5
    assert distinct_n(texts, 1) == pytest.approx(2 / 5)
    # bigrams: (a b) (b a) | (b a) -> 3 in all, distinct {ab, ba} = 2 -> 2/3.
    # (Counting across the text boundary would add another (a b), giving 2/4.)
    assert distinct_n(texts, 2) == pytest.approx(2 / 3)
    # trigrams: (a b a) | none -> 1 in all, 1 distinct
    assert distinct_n(texts, 3) == 1.0


def test_distinct_n_whitespace_and_empty_cases():
    # Runs of spaces, tabs and newlines are one separator, so the tokens are the cat |
    # the cat: 4 unigrams, 2 distinct; bigrams (the cat) | (the cat): 2, 1 distinct.
    # (Counting across the text boundary would add (cat the), giving 2/3.)
    texts = ["  the\tcat \n", "the   cat"]
    assert distinct_n(texts, 1) == pytest.approx(2 / 4)
    assert distinct_n(texts, 2) == pytest.approx(1 / 2)
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["", "   "], 1) == 0.0
    assert distinct_n(["one", "two"], 2) == 0.0  # no text is two tokens long
    with pytest.raises(ValueError, match="n >= 1"):
        distinct_n(["a b"], 0)


# ---- BLEU, chrF, ROUGE-L ----------------------------------------------------------------

SENTENCES = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine"]
# No letter of these appears in SENTENCES_OTHER, so no character n-gram is shared.
DISJOINT_HYPS = ["moon glow hymn owl", "glum loom mow whom"]
SENTENCES_OTHER = ["taste bread tapir", "pirate spared a date"]


def test_bleu_and_chrf_of_identical_texts_are_100():
    assert bleu(SENTENCES, SENTENCES) == pytest.approx(100.0)
    assert chrf(SENTENCES, SENTENCES) == pytest.approx(100.0)


def test_bleu_and_chrf_of_disjoint_texts_are_near_0():
    assert bleu(DISJOINT_HYPS, SENTENCES_OTHER) < 1.0
    assert chrf(DISJOINT_HYPS, SENTENCES_OTHER) < 1.0
    assert rouge_l(DISJOINT_HYPS, SENTENCES_OTHER) == 0.0


def test_rouge_l_hand_checked():
    # LCS(the cat sat, the cat sat on the mat) = 3: P = 3/3, R = 3/6, F = 2PR/(P+R) = 2/3
    assert rouge_l(["the cat sat"], ["the cat sat on the mat"]) == pytest.approx(2 / 3)
    # Stemming maps "cats" to "cat" (and case is ignored), so this pair matches fully.
    assert rouge_l(["The cats sat"], ["the cat sat"]) == pytest.approx(1.0)
    # The mean over pairs: (2/3 + 1) / 2
    pairs_h = ["the cat sat", "the cats sat"]
    pairs_r = ["the cat sat on the mat", "the cat sat"]
    assert rouge_l(pairs_h, pairs_r) == pytest.approx(5 / 6)


def test_missing_references_are_skipped():
    hyps = ["zzz yyy xxx www", SENTENCES[0], "qqq", SENTENCES[1]]
    refs = [None, SENTENCES[0], "  ", SENTENCES[1]]
    # Only the two pairs with a reference count, and those match exactly.
    assert bleu(hyps, refs) == pytest.approx(100.0)
    assert chrf(hyps, refs) == pytest.approx(100.0)
    assert rouge_l(hyps, refs) == pytest.approx(1.0)
    for metric in (bleu, chrf, rouge_l):
        assert math.isnan(metric(["a b c d"], [None]))
        assert math.isnan(metric([], []))


@pytest.mark.parametrize("metric", [bleu, chrf, rouge_l, text_metrics])
def test_length_mismatch_raises(metric):
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        metric(["a b", "c d"], ["a b"])


def test_text_metrics_keys_and_values():
    completions = ["a b a", "b a"]
    plain = text_metrics(completions)
    assert plain == {
        "eval/distinct_1": pytest.approx(2 / 5),
        "eval/distinct_2": pytest.approx(2 / 3),
    }
    full = text_metrics(SENTENCES, SENTENCES)
    assert set(full) == {
        "eval/distinct_1",
        "eval/distinct_2",
        "eval/bleu",
        "eval/chrf",
        "eval/rouge_l",
    }
    assert full["eval/bleu"] == pytest.approx(100.0)
    assert full["eval/chrf"] == pytest.approx(100.0)
    assert full["eval/rouge_l"] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in full.values())


# ---- perplexity -------------------------------------------------------------------------

PPL_TEXTS = [
    "the cat sat on the mat",
    "a dog ran",
    "the big red bird flew over the old tree and then sat on a log",
    "fish swam",
    "the small blue fish swam slowly in the green pond today",
]
WORDS = sorted({word for text in PPL_TEXTS for word in text.split()})


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tensors this small gain nothing from threads, and on a busy machine the threads'
    barriers can make each training step hundreds of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_tokenizer():
    """A word-level tokenizer over ~100 entries with [EOS] but no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    filler = [f"w{i}" for i in range(100 - 3 - len(WORDS))]
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[EOS]", "[UNK]", *WORDS, *filler])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", eos_token="[EOS]"
    )
    assert len(tokenizer) == 100 and tokenizer.pad_token is None
    return tokenizer


@pytest.fixture(scope="module")
def tiny_llama(tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=None,
        eos_token_id=tiny_tokenizer.eos_token_id,
        pad_token_id=0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return LlamaForCausalLM(config)


def test_perplexity_is_finite_and_above_one(tiny_llama, tiny_tokenizer):
    ppl = perplexity(tiny_llama, tiny_tokenizer, PPL_TEXTS)
    assert math.isfinite(ppl)
    assert ppl > 1.0


def test_perplexity_does_not_depend_on_padding(tiny_llama, tiny_tokenizer):
    tiny_tokenizer.padding_side = "left"  # must be switched to right, then restored
    tiny_llama.train()
    try:
        together = perplexity(tiny_llama, tiny_tokenizer, PPL_TEXTS, batch_size=8)
        one_by_one = perplexity(tiny_llama, tiny_tokenizer, PPL_TEXTS, batch_size=1)
        in_pairs = perplexity(tiny_llama, tiny_tokenizer, PPL_TEXTS, batch_size=2)
        assert together == pytest.approx(one_by_one, rel=1e-5)
        assert in_pairs == pytest.approx(one_by_one, rel=1e-5)
        # The tokenizer and the model come back as they were.
        assert tiny_tokenizer.padding_side == "left"
        assert tiny_tokenizer.pad_token is None
        assert tiny_llama.training
    finally:
        tiny_tokenizer.padding_side = "right"
        tiny_llama.eval()


def test_perplexity_edge_cases(tiny_llama, tiny_tokenizer):
    # An empty text (a fully padded row) and a one-token text add nothing to predict.
    alone = perplexity(tiny_llama, tiny_tokenizer, ["the cat sat"])
    padded = perplexity(tiny_llama, tiny_tokenizer, ["", "the cat sat", "dog"])
    assert padded == pytest.approx(alone, rel=1e-5)
    assert math.isnan(perplexity(tiny_llama, tiny_tokenizer, ["dog", ""]))
    assert math.isnan(perplexity(tiny_llama, tiny_tokenizer, []))
    with pytest.raises(ValueError, match="batch_size"):
        perplexity(tiny_llama, tiny_tokenizer, PPL_TEXTS, batch_size=0)


def test_perplexity_drops_after_training_on_the_texts(tiny_llama, tiny_tokenizer):
    model = copy.deepcopy(tiny_llama)
    before = perplexity(model, tiny_tokenizer, PPL_TEXTS)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    rows = [tiny_tokenizer(text)["input_ids"] for text in PPL_TEXTS]
    width = max(map(len, rows))
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    model.train()
    for _ in range(8):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = perplexity(model, tiny_tokenizer, PPL_TEXTS)
    assert after < 0.8 * before
    assert model.training  # restored


# ---- held-out split ---------------------------------------------------------------------


def test_split_heldout_is_deterministic_and_disjoint():
    train, heldout = split_heldout(50, 0.2, seed=7)
    assert (train, heldout) == split_heldout(50, 0.2, seed=7)
    assert len(heldout) == 10 and len(train) == 40
    assert set(train).isdisjoint(heldout)
    assert sorted(train + heldout) == list(range(50))
    assert train == sorted(train) and heldout == sorted(heldout)
    assert split_heldout(50, 0.2, seed=8)[1] != heldout  # the seed matters
    assert heldout != list(range(40, 50)) and heldout != list(range(10))  # shuffled


def test_split_heldout_sizes():
    assert split_heldout(2, 0.01, seed=0)[1] != []  # at least one held out
    assert len(split_heldout(5, 1.0, seed=0)[1]) == 4  # never all
    assert split_heldout(1, 0.5, seed=0) == ([0], [])
    assert split_heldout(0, 0.5, seed=0) == ([], [])
    assert split_heldout(10, 0.0, seed=0) == (list(range(10)), [])
    assert len(split_heldout(10, 0.25, seed=0)[1]) == 3  # 2.5 rounds half up
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="fraction"):
            split_heldout(10, bad, seed=0)
    with pytest.raises(ValueError, match="n >= 0"):
        split_heldout(-1, 0.5, seed=0)
