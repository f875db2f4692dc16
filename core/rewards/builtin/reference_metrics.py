"""Built-in rewards that compare each completion with a reference text: BLEU, ROUGE-L, chrF.

The metrics are the evaluation's own (``core.text_metrics``), one completion at a time,
scaled to 0..1. A reference column may hold a text or a list of texts (alternatives).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core import text_metrics
from core.rewards.params import (
    REFERENCE_COLUMN_PARAM,
    BatchedReward,
    BuiltinSpec,
    Param,
    column,
    reference_texts,
)


def _against_references(
    reference_column: str, metric: Callable[[str, list[str]], float]
) -> BatchedReward:
    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        values = column(columns, reference_column, len(completions), " (the reference texts)")
        refs = reference_texts(values, reference_column)
        return [metric(c, r) for c, r in zip(completions, refs)]

    return score


def _bleu(*, tokenizer: Any, reference_column: str, lowercase: bool) -> BatchedReward:
    return _against_references(
        reference_column, lambda c, r: text_metrics.sentence_bleu(c, r, lowercase) / 100.0
    )


def _rouge_l(*, tokenizer: Any, reference_column: str) -> BatchedReward:
    return _against_references(reference_column, text_metrics.sentence_rouge_l)


def _chrf(*, tokenizer: Any, reference_column: str, word_order: int) -> BatchedReward:
    return _against_references(
        reference_column, lambda c, r: text_metrics.sentence_chrf(c, r, word_order) / 100.0
    )


BLEU = BuiltinSpec(
    kind="bleu",
    summary="Sentence BLEU of the completion against the reference text",
    score_range=(0.0, 1.0),
    params=(
        REFERENCE_COLUMN_PARAM,
        Param("lowercase", "bool", "Compare lower-cased text", False),
    ),
    build=_bleu,
    help=(
        "sacrebleu's sentence BLEU (13a tokens, n-grams up to 4, exp smoothing, "
        "effective order) divided by 100. Several references count as alternatives."
    ),
)

ROUGE_L = BuiltinSpec(
    kind="rouge_l",
    summary="ROUGE-L F1 (longest common subsequence of words) against the reference",
    score_range=(0.0, 1.0),
    params=(REFERENCE_COLUMN_PARAM,),
    build=_rouge_l,
    help=(
        "rouge-score's ROUGE-L F1 with Porter stemming, as the evaluation computes it. "
        "Only ASCII letters and digits count as words. The best over several references."
    ),
)

CHRF = BuiltinSpec(
    kind="chrf",
    summary="chrF (character n-gram F-score) of the completion against the reference",
    score_range=(0.0, 1.0),
    params=(
        REFERENCE_COLUMN_PARAM,
        Param(
            "word_order",
            "int",
            "Word n-gram order added to the character n-grams: 0 is chrF, 2 is chrF++",
            default=0,
            min=0,
            max=2,
        ),
    ),
    build=_chrf,
    help="sacrebleu's sentence chrF divided by 100; the best over several references.",
)
