"""Built-in rewards a user can pick without writing code, and their registry.

``BUILTINS[kind](tokenizer=..., **params)`` builds a batched reward
``(prompts, completions, **columns) -> list[float]``. Parameters are checked
then, once, so a bad recipe fails before training starts rather than mid-run.
``BUILTIN_SPECS`` holds the same built-ins as ``BuiltinSpec`` objects: a
summary, the score's range and each parameter's type, default and help, for a
form to be generated from.

This module holds the registry and the plain-text rewards (sentiment, length,
keywords, repetition, the EOS penalty); the others live in ``format_checks``,
``answers``, ``reference_metrics`` and ``similarity``. To add one, build a
``BuiltinSpec`` and ``register`` it at the end of this file.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from core.rewards.builtin.answers import EXACT_MATCH, NUMERIC_MATCH
from core.rewards.builtin.format_checks import JSON_FORMAT, REGEX, TAG_FORMAT
from core.rewards.builtin.reference_metrics import BLEU, CHRF, ROUGE_L
from core.rewards.builtin.similarity import EMBEDDING_SIMILARITY
from core.rewards.errors import RewardConfigError, RewardError
from core.rewards.params import BatchedReward, BuiltinSpec, Factory, Param, check_names, column

# BuiltinSpec, Param and check_names: for rewards defined elsewhere.
__all__ = [
    "BUILTINS",
    "BUILTIN_SPECS",
    "FINISHED_COLUMN",
    "BuiltinSpec",
    "Param",
    "check_names",
    "register",
]

LENGTH_UNITS = ("chars", "words", "tokens")
FINISHED_COLUMN = "finished"
"""Per completion: True when it ended with EOS or a stop string, False when it was cut
at max_new_tokens. Set by the training loop from the rollout (``Rollout.ended``)."""


def _check_bool(component: str, key: str, value: Any) -> bool:
    """For factories written by hand (not from a ``BuiltinSpec``): a bool, or raise."""
    if not isinstance(value, bool):
        raise RewardConfigError(
            f"{component}: parameter '{key}' must be true or false, got {value!r}"
        )
    return value


def _needs_tokenizer(component: str, unit: str, tokenizer: Any) -> None:
    if unit == "tokens" and tokenizer is None:
        raise RewardConfigError(
            f"{component}: unit 'tokens' needs the model's tokenizer, but none was given; "
            "use unit 'chars' or 'words', or pass tokenizer="
        )


def _units(text: str, unit: str, tokenizer: Any) -> Sequence[Any]:
    """The text as characters, whitespace-separated words, or token ids (no special tokens)."""
    if unit == "chars":
        return text
    if unit == "words":
        return text.split()
    return tokenizer.encode(text, add_special_tokens=False)


def whole_word_patterns(words: Sequence[str], case_sensitive: bool) -> list[re.Pattern[str]]:
    """One pattern per distinct keyword, matching it when no letter, digit or underscore
    touches it on either side ("cat" is not in "concatenate"; "C++" still matches)."""
    flags = 0 if case_sensitive else re.IGNORECASE
    unique = dict.fromkeys(w if case_sensitive else w.lower() for w in words)
    return [re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", flags) for w in unique]


# --- sentiment -----------------------------------------------------------------

_analyzer: Any = None
_analyzer_lock = threading.Lock()


def _get_analyzer() -> Any:
    """Create the VADER analyzer on first use; loading its lexicon takes a moment."""
    global _analyzer
    with _analyzer_lock:
        if _analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _analyzer = SentimentIntensityAnalyzer()
        return _analyzer


def _sentiment(*, tokenizer: Any) -> BatchedReward:
    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        analyzer = _get_analyzer()
        return [float(analyzer.polarity_scores(c)["compound"]) for c in completions]

    return score


SENTIMENT = BuiltinSpec(
    kind="sentiment",
    summary="Lexicon (VADER) sentiment of the completion: positive is higher",
    score_range=(-1.0, 1.0),
    params=(),
    build=_sentiment,
    help="VADER's compound score of each completion, from -1 (very negative) to 1.",
)


# --- length --------------------------------------------------------------------


def _length(*, tokenizer: Any, target: int, unit: str) -> BatchedReward:
    _needs_tokenizer("length", unit, tokenizer)

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [-abs(len(_units(c, unit, tokenizer)) - target) / target for c in completions]

    return score


LENGTH = BuiltinSpec(
    kind="length",
    summary="Closeness of the completion's length to a target length",
    score_range=(None, 0.0),
    params=(
        Param("target", "int", "Length to aim for, in `unit`s", required=True, min=1, example=100),
        Param(
            "unit",
            "str",
            "chars (characters), words (whitespace-separated) or tokens (the model's)",
            default="chars",
            choices=LENGTH_UNITS,
        ),
    ),
    build=_length,
    help=(
        "-abs(length - target) / target: 0 at the target, -1 for an empty completion, "
        "below -1 past twice the target (no fixed floor: for completions of at most "
        "max_len units the lowest score is -max(1, max_len / target - 1))."
    ),
)


# --- keywords ------------------------------------------------------------------


def _keywords(
    *, tokenizer: Any, keywords: tuple[str, ...], case_sensitive: bool, per_occurrence: bool
) -> BatchedReward:
    patterns = whole_word_patterns(keywords, case_sensitive)

    def count(text: str) -> float:
        if per_occurrence:
            return float(sum(len(p.findall(text)) for p in patterns))
        return float(sum(1 for p in patterns if p.search(text)))

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [count(c) for c in completions]

    return score


CASE_SENSITIVE = Param("case_sensitive", "bool", "Match upper and lower case exactly", False)

KEYWORDS = BuiltinSpec(
    kind="keywords",
    summary="Number of keyword occurrences in the completion (whole words)",
    score_range=(0.0, None),
    params=(
        Param(
            "keywords", "str_list", "Words or phrases to count", required=True, example=["thanks"]
        ),
        CASE_SENSITIVE,
        Param(
            "per_occurrence",
            "bool",
            "Count every occurrence (true) or each distinct keyword once (false)",
            True,
        ),
    ),
    build=_keywords,
    help=(
        "A keyword matches when no letter, digit or underscore touches it, so 'cat' is "
        "not found in 'concatenate'. 0 when none is present; no upper bound with "
        "per_occurrence, else at most the number of keywords."
    ),
)


def _keyword_check(
    *,
    tokenizer: Any,
    required: tuple[str, ...],
    forbidden: tuple[str, ...],
    case_sensitive: bool,
) -> BatchedReward:
    if not required and not forbidden:
        raise RewardConfigError(
            "keyword_check: give at least one keyword in 'required' or 'forbidden'"
        )
    need = whole_word_patterns(required, case_sensitive)
    avoid = whole_word_patterns(forbidden, case_sensitive)

    def share(patterns: list[re.Pattern[str]], text: str) -> float:
        return sum(1 for p in patterns if p.search(text)) / len(patterns) if patterns else 0.0

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [share(need, c) - share(avoid, c) for c in completions]

    return score


KEYWORD_CHECK = BuiltinSpec(
    kind="keyword_check",
    summary="Required keywords present and forbidden ones absent",
    score_range=(-1.0, 1.0),
    params=(
        Param(
            "required",
            "str_list",
            "Words or phrases the completion should contain",
            (),
            example=["thanks"],
        ),
        Param("forbidden", "str_list", "Words or phrases it should not contain", ()),
        CASE_SENSITIVE,
    ),
    build=_keyword_check,
    help=(
        "Share of required keywords present minus share of forbidden keywords present "
        "(whole words, as in 'keywords'): 1 when every required one is there and no "
        "forbidden one, -1 for the opposite. At least one list must be non-empty."
    ),
)


# --- repetition ----------------------------------------------------------------


def repeated_fraction(units: Sequence[Any], n: int) -> float:
    """Share of the n-grams in ``units`` that repeat an earlier one; 0 with no n-gram."""
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _repetition(*, tokenizer: Any, n: int, unit: str) -> BatchedReward:
    _needs_tokenizer("repetition", unit, tokenizer)

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [-repeated_fraction(_units(c, unit, tokenizer), n) for c in completions]

    return score


REPETITION = BuiltinSpec(
    kind="repetition",
    summary="Penalty for repeated n-grams inside the completion",
    score_range=(-1.0, 0.0),
    params=(
        Param("n", "int", "Length of the n-grams compared", default=3, min=1, max=32),
        Param(
            "unit",
            "str",
            "n-grams of words (whitespace-separated), tokens (the model's) or chars",
            default="words",
            choices=("words", "tokens", "chars"),
        ),
    ),
    build=_repetition,
    help=(
        "-(1 - distinct n-grams / all n-grams) of each completion: 0 when no n-gram "
        "repeats (or the completion is shorter than n), near -1 for a loop of one phrase."
    ),
)


# --- EOS / truncation ----------------------------------------------------------


def _eos_penalty(*, tokenizer: Any) -> BatchedReward:
    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        finished = column(columns, FINISHED_COLUMN, len(completions), " (set by the training loop)")
        for i, value in enumerate(finished):
            if not isinstance(value, bool):
                raise RewardError(
                    f"column '{FINISHED_COLUMN}' must hold true/false, got {value!r} "
                    f"for sample {i}",
                    sample_index=i,
                )
        return [0.0 if done else -1.0 for done in finished]

    return score


EOS_PENALTY = BuiltinSpec(
    kind="eos_penalty",
    summary="-1 for a completion cut off at max_new_tokens, 0 when it ended by itself",
    score_range=(-1.0, 0.0),
    params=(),
    build=_eos_penalty,
    help=(
        "Ended by itself means an EOS token or one of generation.stop. With weight w this "
        "is the same penalty as algorithm.missing_eos_penalty = w, but shown as its own "
        "reward component: it is logged, counts in reward/mean, the samples and the "
        "evaluation, and can be combined with other components by weight. "
        "missing_eos_penalty is applied inside the algorithm and appears in no reward "
        "curve. Use one of the two, not both."
    ),
)


def _overlong(*, tokenizer: Any, max_length: int, cache: int) -> BatchedReward:
    if cache > max_length:
        raise RewardConfigError(
            f"overlong: cache ({cache}) must be at most max_length ({max_length})"
        )
    _needs_tokenizer("overlong", "tokens", tokenizer)
    free = max_length - cache

    def one(text: str) -> float:
        n = len(tokenizer.encode(text, add_special_tokens=False))
        if n <= free:
            return 0.0
        return -1.0 if n > max_length else (free - n) / max(cache, 1)

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [one(c) for c in completions]

    return score


OVERLONG = BuiltinSpec(
    kind="overlong",
    summary="DAPO's soft overlong punishment: 0 while short, down to -1 near max_length",
    score_range=(-1.0, 0.0),
    params=(
        Param(
            "max_length",
            "int",
            "Tokens at which the punishment reaches -1: generation.max_new_tokens",
            required=True,
            min=1,
            example=64,
        ),
        Param(
            "cache",
            "int",
            "Width of the band before max_length in which the punishment grows",
            default=16,
            min=1,
        ),
    ),
    build=_overlong,
    help=(
        "Yu et al. 2025 (DAPO), in tokens of the model: 0 up to max_length - cache, then "
        "falling linearly to -1 at max_length, and -1 beyond. A completion cut off by the "
        "length limit scores -1, one that stops just before it nearly so: the model learns "
        "to finish within the budget without a cliff at the limit."
    ),
)


# --- the registry --------------------------------------------------------------

BUILTINS: dict[str, Factory] = {}
"""kind -> factory: ``BUILTINS[kind](tokenizer=..., **params)`` returns the batched reward."""

BUILTIN_SPECS: dict[str, BuiltinSpec] = {}
"""kind -> description (summary, score range, parameters) of the built-ins that have one."""


def register(spec: BuiltinSpec) -> BuiltinSpec:
    """Add a built-in to ``BUILTINS`` and ``BUILTIN_SPECS``."""
    if spec.kind in BUILTINS:
        raise ValueError(f"a built-in reward named {spec.kind!r} is already registered")
    BUILTINS[spec.kind] = spec
    BUILTIN_SPECS[spec.kind] = spec
    return spec


for _spec in (
    SENTIMENT,
    LENGTH,
    KEYWORDS,
    KEYWORD_CHECK,
    REGEX,
    JSON_FORMAT,
    TAG_FORMAT,
    EXACT_MATCH,
    NUMERIC_MATCH,
    BLEU,
    ROUGE_L,
    CHRF,
    EMBEDDING_SIMILARITY,
    REPETITION,
    EOS_PENALTY,
    OVERLONG,
):
    register(_spec)

# Model-backed rewards (AI feedback, reward models; core.rewards.model_scored): imported last,
# they load their models only when first used.
from core.rewards.model_scored.judge import JUDGE  # noqa: E402
from core.rewards.model_scored.reward_model import REWARD_MODEL  # noqa: E402

register(JUDGE)
register(REWARD_MODEL)
