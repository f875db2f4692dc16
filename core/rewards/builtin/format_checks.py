"""Built-in rewards that check the form of a completion: a regex, valid JSON, tags."""

from __future__ import annotations

import json
import re
from typing import Any

from core.rewards.errors import RewardConfigError
from core.rewards.params import BatchedReward, BuiltinSpec, Param

# --- regex ---------------------------------------------------------------------

REGEX_MODES = ("search", "full", "count")


def _regex(
    *, tokenizer: Any, pattern: str, mode: str, ignore_case: bool, dotall: bool
) -> BatchedReward:
    flags = (re.IGNORECASE if ignore_case else 0) | (re.DOTALL if dotall else 0)
    try:
        compiled = re.compile(pattern, flags)
    except re.error as exc:
        raise RewardConfigError(
            f"regex: parameter 'pattern' is not a valid regular expression ({exc}): {pattern!r}"
        ) from None

    def one(text: str) -> float:
        if mode == "count":
            return float(sum(1 for _ in compiled.finditer(text)))
        if mode == "full":
            return 1.0 if compiled.fullmatch(text.strip()) else 0.0
        return 1.0 if compiled.search(text) else 0.0

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [one(c) for c in completions]

    return score


REGEX = BuiltinSpec(
    kind="regex",
    summary="Whether the completion matches a regular expression (or how often)",
    score_range=(0.0, None),
    params=(
        Param(
            "pattern",
            "str",
            "A Python regular expression",
            required=True,
            example=r"^<think>.*?</think>\s*<answer>.*?</answer>$",
        ),
        Param(
            "mode",
            "str",
            "search: 1 if it matches anywhere; full: 1 if it matches the whole completion "
            "(leading and trailing whitespace ignored); count: the number of matches",
            default="search",
            choices=REGEX_MODES,
        ),
        Param("ignore_case", "bool", "Ignore upper and lower case", False),
        Param("dotall", "bool", "Let '.' match newlines too", False),
    ),
    build=_regex,
    help="1 or 0 in modes search and full; in mode count, 0 or more.",
)


# --- JSON ----------------------------------------------------------------------

JSON_TOP_LEVELS = ("object", "array", "any")
_FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)
_NOT_FOUND = object()


def find_json(text: str, allow_extra_text: bool) -> Any:
    """The JSON value the text holds, or ``_NOT_FOUND``.

    Without extra text the whole completion (trimmed, or the inside of one ``` code
    fence that is the whole completion) must parse. With it, the first fenced block or
    the first '{' / '[' from which a JSON value parses counts, whatever surrounds it.
    """
    stripped = text.strip()
    decoder = json.JSONDecoder()
    fence = _FENCE.fullmatch(stripped) if not allow_extra_text else _FENCE.search(stripped)
    candidates = [fence.group(1).strip()] if fence else []
    candidates.append(stripped)
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        if allow_extra_text:
            for match in re.finditer(r"[\[{]", candidate):
                try:
                    return decoder.raw_decode(candidate, match.start())[0]
                except ValueError:
                    continue
    return _NOT_FOUND


def _json_format(
    *,
    tokenizer: Any,
    top_level: str,
    required_keys: tuple[str, ...],
    allow_extra_text: bool,
) -> BatchedReward:
    if required_keys and top_level == "array":
        raise RewardConfigError(
            "json_format: 'required_keys' needs top_level 'object' (or 'any'), not 'array'"
        )
    want: type | None = {"object": dict, "array": list}.get(top_level)
    if required_keys:
        want = dict

    def one(text: str) -> float:
        value = find_json(text, allow_extra_text)
        if value is _NOT_FOUND:
            return 0.0
        if want is not None and not isinstance(value, want):
            return 0.5
        if not required_keys:
            return 1.0
        present = sum(1 for key in required_keys if key in value)
        return 0.5 + 0.5 * present / len(required_keys)

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [one(c) for c in completions]

    return score


JSON_FORMAT = BuiltinSpec(
    kind="json_format",
    summary="Whether the completion is valid JSON (of the right shape, with given keys)",
    score_range=(0.0, 1.0),
    params=(
        Param(
            "top_level",
            "str",
            "The kind of JSON value wanted at the top level",
            default="object",
            choices=JSON_TOP_LEVELS,
        ),
        Param(
            "required_keys",
            "str_list",
            "Keys the top-level object must have",
            default=(),
            example=["name", "summary"],
        ),
        Param(
            "allow_extra_text",
            "bool",
            "Accept text around the JSON (the first JSON value found counts); when false "
            "the whole completion must be JSON (a ``` code fence around it is accepted)",
            False,
        ),
    ),
    build=_json_format,
    help=(
        "0 when no JSON parses; 0.5 for JSON of the wrong top-level type; with "
        "required_keys, 0.5 + 0.5 x the share of them present; 1 for JSON of the right "
        "type with every required key."
    ),
)


# --- tags ----------------------------------------------------------------------

_TAG_NAME = re.compile(r"[A-Za-z][\w.-]*")


def tag_contents(text: str, tag: str) -> list[str]:
    """The text inside each ``<tag>...</tag>`` pair, in order (not nested)."""
    return re.findall(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", text, re.DOTALL)


def well_formed_once(text: str, tag: str) -> bool:
    """One opening and one closing tag, in that order, around something not blank."""
    opens = text.count(f"<{tag}>")
    closes = text.count(f"</{tag}>")
    contents = tag_contents(text, tag)
    return opens == 1 and closes == 1 and len(contents) == 1 and bool(contents[0].strip())


def _tag_format(*, tokenizer: Any, tags: tuple[str, ...]) -> BatchedReward:
    for tag in tags:
        if not _TAG_NAME.fullmatch(tag):
            raise RewardConfigError(
                f"tag_format: parameter 'tags' holds {tag!r}, which is not a tag name "
                "(write answer, not <answer>)"
            )

    def score(prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        return [sum(well_formed_once(c, t) for t in tags) / len(tags) for c in completions]

    return score


TAG_FORMAT = BuiltinSpec(
    kind="tag_format",
    summary="Whether each tag appears once, around some text (e.g. <answer>...</answer>)",
    score_range=(0.0, 1.0),
    params=(
        Param(
            "tags",
            "str_list",
            "Tag names without angle brackets, e.g. answer for <answer>...</answer>",
            default=("answer",),
        ),
    ),
    build=_tag_format,
    help=(
        "The share of the tags that appear exactly once, opened then closed, around text "
        "that is not blank. For a fixed order of tags use 'regex' in mode full."
    ),
)
