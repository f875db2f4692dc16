"""Built-in rewards a user can pick without writing code.

Each factory in ``BUILTINS`` takes keyword parameters (as written in a recipe)
plus an optional ``tokenizer=`` and returns a batched reward
``(prompts, completions, **columns) -> list[float]``. Parameters are checked
here, once, so a bad recipe fails before training starts rather than mid-run.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from core.rewards.errors import RewardConfigError

BatchedReward = Callable[..., list[float]]
Factory = Callable[..., BatchedReward]

LENGTH_UNITS = ("chars", "words", "tokens")


def _check_names(component: str, params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Reject parameters the component does not know, listing the ones it does."""
    for key in params:
        if key not in allowed:
            known = ", ".join(allowed) if allowed else "none"
            raise RewardConfigError(
                f"{component}: unknown parameter '{key}' (allowed parameters: {known})"
            )


def _check_bool(component: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RewardConfigError(
            f"{component}: parameter '{key}' must be true or false, got {value!r}"
        )
    return value


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


def sentiment(*, tokenizer: Any = None, **params: Any) -> BatchedReward:
    """VADER compound sentiment of each completion, in [-1, 1] (positive is higher)."""
    _check_names("sentiment", params, ())

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        analyzer = _get_analyzer()
        return [float(analyzer.polarity_scores(c)["compound"]) for c in completions]

    return score


# --- length --------------------------------------------------------------------


def length(*, tokenizer: Any = None, **params: Any) -> BatchedReward:
    """Closeness of each completion's length to ``target``: ``-abs(len - target) / target``.

    0 is a perfect hit and the reward only goes down from there. An empty
    completion scores -1; a completion longer than ``2 * target`` scores below
    -1, so the reward has no fixed floor and is bounded below only by the
    generation limit: for completions of at most ``max_len`` units the lowest
    possible score is ``-max(1, max_len / target - 1)``.

    ``unit`` is "chars" (characters), "words" (whitespace-separated) or
    "tokens" (needs ``tokenizer=``, counted without special tokens).
    """
    _check_names("length", params, ("target", "unit"))
    if "target" not in params:
        raise RewardConfigError("length: parameter 'target' is required (a positive integer)")
    target = params["target"]
    if isinstance(target, bool) or not isinstance(target, int) or target <= 0:
        raise RewardConfigError(
            f"length: parameter 'target' must be a positive integer, got {target!r}"
        )
    unit = params.get("unit", "chars")
    if unit not in LENGTH_UNITS:
        raise RewardConfigError(
            f"length: parameter 'unit' must be one of {', '.join(LENGTH_UNITS)}, got {unit!r}"
        )
    if unit == "tokens" and tokenizer is None:
        raise RewardConfigError(
            "length: unit 'tokens' needs the model's tokenizer, but none was given; "
            "use unit 'chars' or 'words', or pass tokenizer="
        )

    def measure(text: str) -> int:
        if unit == "chars":
            return len(text)
        if unit == "words":
            return len(text.split())
        return len(tokenizer.encode(text, add_special_tokens=False))

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [-abs(measure(c) - target) / target for c in completions]

    return score


# --- keywords ------------------------------------------------------------------


def keywords(*, tokenizer: Any = None, **params: Any) -> BatchedReward:
    """Count keyword occurrences in each completion, matching whole words only.

    With ``per_occurrence`` true (the default) every occurrence counts; with it
    false the score is the number of distinct keywords present. A keyword
    matches when it is not directly preceded or followed by a letter, digit or
    underscore, so "cat" does not match inside "concatenate" and keywords that
    start or end with punctuation ("C++") still work.
    """
    _check_names("keywords", params, ("keywords", "case_sensitive", "per_occurrence"))
    words = params.get("keywords")
    if (
        not isinstance(words, (list, tuple))
        or not words
        or not all(isinstance(w, str) and w.strip() for w in words)
    ):
        raise RewardConfigError(
            f"keywords: parameter 'keywords' must be a non-empty list of non-empty strings, "
            f"got {words!r}"
        )
    case_sensitive = _check_bool("keywords", "case_sensitive", params.get("case_sensitive", False))
    per_occurrence = _check_bool("keywords", "per_occurrence", params.get("per_occurrence", True))

    flags = 0 if case_sensitive else re.IGNORECASE
    unique = list(dict.fromkeys(w if case_sensitive else w.lower() for w in words))
    patterns = [re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", flags) for w in unique]

    def count(text: str) -> float:
        if per_occurrence:
            return float(sum(len(p.findall(text)) for p in patterns))
        return float(sum(1 for p in patterns if p.search(text)))

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [count(c) for c in completions]

    return score


BUILTINS: dict[str, Factory] = {
    "sentiment": sentiment,
    "length": length,
    "keywords": keywords,
}
