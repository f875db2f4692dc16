"""Built-in rewards for verifiable answers: exact (text) match and numeric match.

Both compare an answer taken from the completion (the whole text, the inside of an
``<answer>`` tag, a LaTeX ``\\boxed{}``, a line, a number) with the prompt's
reference column, and score 1 for a match and 0 otherwise.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from core.rewards.builtin.format_checks import tag_contents
from core.rewards.errors import RewardError
from core.rewards.params import (
    REFERENCE_COLUMN_PARAM,
    BatchedReward,
    BuiltinSpec,
    Param,
    column,
    reference_texts,
)

# --- taking the answer out of a completion -------------------------------------


def last_boxed(text: str) -> str | None:
    r"""The contents of the last ``\boxed{...}``, braces balanced; None when there is none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _last_tag(text: str) -> str | None:
    found = tag_contents(text, "answer")
    return found[-1] if found else None


TEXT_EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "whole": lambda text: text,
    "answer_tag": _last_tag,
    "boxed": last_boxed,
    "first_line": lambda text: (_lines(text) or [None])[0],
    "last_line": lambda text: (_lines(text) or [None])[-1],
}

_EDGE_NOISE = " \t\r\n.,;:!?\"'`*_()[]"


def normalize_answer(text: str, case_sensitive: bool = False) -> str:
    """Unicode-normalised (NFKC), whitespace runs collapsed, punctuation, quotes and
    markdown emphasis trimmed from both ends; case-folded unless ``case_sensitive``."""
    text = " ".join(unicodedata.normalize("NFKC", text).split()).strip(_EDGE_NOISE)
    return text if case_sensitive else text.casefold()


# --- exact match ---------------------------------------------------------------

EXTRACT_HELP = (
    "Where the answer is: whole (the whole completion), answer_tag (inside the last "
    "<answer>...</answer>), boxed (the last \\boxed{...}), first_line or last_line "
    "(non-blank lines)"
)


def _exact_match(
    *, tokenizer: Any, reference_column: str, extract: str, mode: str, case_sensitive: bool
) -> BatchedReward:
    take = TEXT_EXTRACTORS[extract]

    def matches(answer: str | None, refs: list[str]) -> bool:
        if answer is None:
            return False
        got = normalize_answer(answer, case_sensitive)
        for ref in refs:
            want = normalize_answer(ref, case_sensitive)
            if mode == "exact" and got == want:
                return True
            if mode == "contains" and re.search(rf"(?<!\w){re.escape(want)}(?!\w)", got):
                return True
        return False

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        values = column(columns, reference_column, len(completions), " (the correct answers)")
        refs = reference_texts(values, reference_column)
        return [float(matches(take(c), r)) for c, r in zip(completions, refs)]

    return score


EXACT_MATCH = BuiltinSpec(
    kind="exact_match",
    summary="1 when the answer equals the reference answer, else 0",
    score_range=(0.0, 1.0),
    params=(
        REFERENCE_COLUMN_PARAM,
        Param(
            "extract",
            "str",
            EXTRACT_HELP,
            default="whole",
            choices=tuple(TEXT_EXTRACTORS),
        ),
        Param(
            "mode",
            "str",
            "exact: the answer must equal the reference; contains: the reference must "
            "appear in it as whole words",
            default="exact",
            choices=("exact", "contains"),
        ),
        Param("case_sensitive", "bool", "Match upper and lower case exactly", False),
    ),
    build=_exact_match,
    help=(
        "Both sides are compared after trimming spaces, punctuation, quotes and "
        "markdown emphasis at the ends, collapsing inner whitespace and (by default) "
        "ignoring case, so 'Paris.' matches 'paris'. A list of references accepts any "
        "of them. 0 when the answer cannot be found (no tag, no \\boxed{})."
    ),
)


# --- numeric match -------------------------------------------------------------

_NUMBER = re.compile(
    r"(?:(?<![\w.])[-+\u2212])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|"
    r"(?:(?<![\w.])[-+\u2212])?\.\d+"
)


def parse_number(text: str) -> float | None:
    """The number that ``text`` is (thousands commas, a sign, a trailing period allowed)."""
    text = text.strip().rstrip(".").strip()
    match = _NUMBER.fullmatch(text)
    return _to_float(match.group()) if match else None


def _to_float(token: str) -> float:
    return float(token.replace(",", "").replace("\u2212", "-"))


def numbers_in(text: str) -> list[float]:
    """Every number in the text, in order: "-3", "1,234.5", ".5" (not "5-3"'s "-3")."""
    return [_to_float(m.group()) for m in _NUMBER.finditer(text)]


def _last_number(text: str | None) -> float | None:
    found = numbers_in(text) if text is not None else []
    return found[-1] if found else None


NUMBER_EXTRACTORS: dict[str, Callable[[str], float | None]] = {
    "last_number": _last_number,
    "first_number": lambda text: (numbers_in(text) or [None])[0],
    "answer_tag": lambda text: _last_number(_last_tag(text)),
    "boxed": lambda text: _last_number(last_boxed(text)),
    "whole": parse_number,
}


def reference_number(value: Any, name: str, i: int) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number: float | None = float(value)
    elif isinstance(value, str):
        number = parse_number(value)
    else:
        number = None
    if number is None or not math.isfinite(number):
        raise RewardError(
            f"sample {i}: the reference {value!r} in column '{name}' is not a number",
            sample_index=i,
        )
    return number


def _numeric_match(
    *, tokenizer: Any, reference_column: str, extract: str, tolerance: float
) -> BatchedReward:
    take = NUMBER_EXTRACTORS[extract]

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        values = column(columns, reference_column, len(completions), " (the correct numbers)")
        refs = [reference_number(v, reference_column, i) for i, v in enumerate(values)]
        out = []
        for completion, ref in zip(completions, refs):
            got = take(completion)
            out.append(float(got is not None and abs(got - ref) <= tolerance))
        return out

    return score


NUMERIC_MATCH = BuiltinSpec(
    kind="numeric_match",
    summary="1 when the number in the completion equals the reference number, else 0",
    score_range=(0.0, 1.0),
    params=(
        Param(
            "reference_column",
            "str",
            "Prompt-set column holding each prompt's correct number",
            default="answer",
        ),
        Param(
            "extract",
            "str",
            "Which number counts: last_number or first_number in the completion, the last "
            "number inside <answer>...</answer> (answer_tag) or \\boxed{...} (boxed), or "
            "whole (the completion must be just a number)",
            default="last_number",
            choices=tuple(NUMBER_EXTRACTORS),
        ),
        Param(
            "tolerance",
            "float",
            "Largest absolute difference still counted as equal",
            default=0.0,
            min=0.0,
        ),
    ),
    build=_numeric_match,
    help=(
        "Numbers may carry a sign, thousands commas and decimals ('-1,234.5'); a minus "
        "sign glued to a preceding word or number is not a sign ('5-3' holds 5 and 3). "
        "References may be numbers or text such as '42'. 0 when no number is found."
    ),
)
