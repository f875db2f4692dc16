"""Text-quality metrics for evaluating a run's completions.

Pure functions over lists of strings (diversity, BLEU, chrF, ROUGE-L), plus the
perplexity of texts under a causal LM and a seeded train/held-out split.

`sacrebleu` and `rouge-score` are imported when first used, so importing this module
costs nothing and a missing package is reported only by the metric that needs it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from functools import lru_cache

import torch

__all__ = [
    "bleu",
    "chrf",
    "distinct_n",
    "perplexity",
    "rouge_l",
    "sentence_bleu",
    "sentence_chrf",
    "sentence_rouge_l",
    "split_heldout",
    "text_metrics",
]


# ---- diversity --------------------------------------------------------------------------


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / total n-grams over the whitespace tokens of all texts.

    n-grams never span two texts; the distinct count is taken over all texts together.
    0.0 when the texts hold no n-gram at all (empty, or every text shorter than n).
    """
    if n < 1:
        raise ValueError(f"distinct_n needs n >= 1, got {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = text.split()
        for i in range(len(tokens) - n + 1):
            seen.add(tuple(tokens[i : i + n]))
            total += 1
    return len(seen) / total if total else 0.0


# ---- reference-based metrics ------------------------------------------------------------


def _aligned_pairs(
    name: str, hypotheses: Sequence[str], references: Sequence[str | None]
) -> tuple[list[str], list[str]]:
    """The (hypothesis, reference) pairs whose reference is present and not blank."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{name}: got {len(hypotheses)} hypotheses but {len(references)} references; "
            "they must be aligned one to one"
        )
    hyps: list[str] = []
    refs: list[str] = []
    for hyp, ref in zip(hypotheses, references):
        if ref is None or not ref.strip():
            continue
        hyps.append("" if hyp is None else hyp)
        refs.append(ref)
    return hyps, refs


def _import_sacrebleu():
    try:
        import sacrebleu
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "BLEU and chrF need the 'sacrebleu' package: pip install sacrebleu"
        ) from exc
    return sacrebleu


def bleu(hypotheses: Sequence[str], references: Sequence[str | None]) -> float:
    """Corpus BLEU (sacrebleu defaults, 0..100) of hypotheses against aligned references.

    A None or blank reference drops its pair; NaN when every pair is dropped. Standard
    corpus BLEU counts n-grams up to 4, so a corpus with no 4-gram scores 0.
    """
    hyps, refs = _aligned_pairs("bleu", hypotheses, references)
    if not hyps:
        return math.nan
    return float(_import_sacrebleu().corpus_bleu(hyps, [refs]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str | None]) -> float:
    """Corpus chrF (sacrebleu defaults, 0..100) of hypotheses against aligned references.

    A None or blank reference drops its pair; NaN when every pair is dropped.
    """
    hyps, refs = _aligned_pairs("chrf", hypotheses, references)
    if not hyps:
        return math.nan
    return float(_import_sacrebleu().corpus_chrf(hyps, [refs]).score)


@lru_cache(maxsize=1)
def _rouge_l_scorer():
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ROUGE-L needs the 'rouge-score' package: pip install rouge-score"
        ) from exc
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(hypotheses: Sequence[str], references: Sequence[str | None]) -> float:
    """Mean ROUGE-L F1 (rouge-score, Porter stemming, 0..1) over aligned pairs.

    A None or blank reference drops its pair; NaN when every pair is dropped.
    rouge-score's tokenizer keeps only ASCII letters and digits (lower-cased), so text
    in other scripts has no tokens and scores 0.
    """
    hyps, refs = _aligned_pairs("rouge_l", hypotheses, references)
    if not hyps:
        return math.nan
    return sum(sentence_rouge_l(hyp, [ref]) for hyp, ref in zip(hyps, refs)) / len(hyps)


# ---- one hypothesis at a time (the reference-based rewards) -----------------------------


@lru_cache(maxsize=4)
def _sentence_bleu_metric(lowercase: bool):
    return _import_sacrebleu().BLEU(lowercase=lowercase, effective_order=True)


@lru_cache(maxsize=4)
def _sentence_chrf_metric(word_order: int):
    return _import_sacrebleu().CHRF(word_order=word_order)


def sentence_bleu(hypothesis: str, references: Sequence[str], lowercase: bool = False) -> float:
    """Sentence BLEU (sacrebleu's sentence_bleu: exp smoothing, effective order), 0..100.

    Several references count as alternatives, as in corpus BLEU.
    """
    return float(
        _sentence_bleu_metric(lowercase).sentence_score(hypothesis, list(references)).score
    )


def sentence_chrf(hypothesis: str, references: Sequence[str], word_order: int = 0) -> float:
    """Sentence chrF (word_order 2: chrF++), 0..100; the best over several references."""
    return float(
        _sentence_chrf_metric(word_order).sentence_score(hypothesis, list(references)).score
    )


def sentence_rouge_l(hypothesis: str, references: Sequence[str]) -> float:
    """ROUGE-L F1 (as ``rouge_l``), 0..1; the best over several references."""
    scorer = _rouge_l_scorer()
    return float(max(scorer.score(ref, hypothesis)["rougeL"].fmeasure for ref in references))


def text_metrics(
    completions: Sequence[str], references: Sequence[str | None] | None = None
) -> dict[str, float]:
    """`eval/distinct_1` and `eval/distinct_2`, and with references also `eval/bleu`,
    `eval/chrf` (0..100) and `eval/rouge_l` (0..1)."""
    metrics = {
        "eval/distinct_1": distinct_n(completions, 1),
        "eval/distinct_2": distinct_n(completions, 2),
    }
    if references is not None:
        metrics["eval/bleu"] = bleu(completions, references)
        metrics["eval/chrf"] = chrf(completions, references)
        metrics["eval/rouge_l"] = rouge_l(completions, references)
    return metrics


# ---- perplexity -------------------------------------------------------------------------


def perplexity(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> float:
    """exp of the token-weighted mean negative log-likelihood of texts under a causal LM.

    Every token after a text's first is predicted from the ones before it (whatever the
    tokenizer adds, such as a BOS token, counts as text). Batches are right-padded with
    an attention mask, so padding does not change the result. Runs without gradients
    with the model in eval mode, then restores its mode and the tokenizer's padding side
    and pad token (the EOS token stands in for a missing pad token). `device` is where
    the inputs go (default: the model's); the model must already be there. NaN when no
    text has two tokens.
    """
    if batch_size < 1:
        raise ValueError(f"perplexity needs batch_size >= 1, got {batch_size}")
    texts = list(texts)
    if device is None:
        device = next(model.parameters()).device

    saved_side = tokenizer.padding_side
    saved_pad = tokenizer.pad_token
    was_training = model.training
    total_nll = 0.0
    total_tokens = 0
    try:
        if saved_pad is None:
            if tokenizer.eos_token is None:
                raise ValueError("perplexity needs a tokenizer with a pad or an EOS token")
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        model.eval()
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size], padding=True, return_tensors="pt"
                )
                input_ids = batch["input_ids"].to(device)
                attention_mask = batch["attention_mask"].to(device)
                if input_ids.shape[1] < 2:
                    continue  # nothing to predict in this batch
                logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
                targets = input_ids[:, 1:]
                # Right padding: target t is real exactly when position t is.
                mask = attention_mask[:, 1:].bool()
                nll = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().transpose(1, 2), targets, reduction="none"
                )
                # masked_fill, not a product: a fully padded row may carry NaN logits.
                total_nll += nll.masked_fill(~mask, 0.0).sum().item()
                total_tokens += int(mask.sum().item())
    finally:
        model.train(was_training)
        tokenizer.padding_side = saved_side
        if saved_pad is None:
            tokenizer.pad_token = None
    if total_tokens == 0:
        return math.nan
    return math.exp(total_nll / total_tokens)


# ---- held-out split ---------------------------------------------------------------------


def split_heldout(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of range(n) into sorted (train, heldout) index lists.

    The held-out share is `fraction` of n rounded half up, at least 1 when n >= 2 and
    fraction > 0, and never all of them (at most n - 1). The same (n, fraction, seed)
    always gives the same split.
    """
    if n < 0:
        raise ValueError(f"split_heldout needs n >= 0, got {n}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"split_heldout needs a fraction in [0, 1], got {fraction}")
    k = math.floor(n * fraction + 0.5)
    if fraction > 0 and n >= 2:
        k = max(k, 1)
    k = max(0, min(k, n - 1))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return sorted(order[k:]), sorted(order[:k])
