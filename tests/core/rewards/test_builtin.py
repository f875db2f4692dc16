"""The built-in rewards on hand-made texts with known scores, their parameter checks,
the registry a form is generated from, and the shipped recipes that use them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from core.config import load_config
from core.data import load_prompts
from core.events import Metrics
from core.paths import assets_dir
from core.rewards import BUILTINS, RewardConfigError, RewardError, build_reward
from core.rewards.builtin.builtins import BUILTIN_SPECS, FINISHED_COLUMN
from core.rewards.params import PARAM_TYPES, BuiltinSpec
from core.training.loop import train
from tests.core.helpers import tiny_config


def score(kind: str, completions: list[str], columns: dict | None = None, **params) -> list:
    fn = BUILTINS[kind](**params)
    return fn([""] * len(completions), completions, **(columns or {}))


def cfg(kind: str, name: str = "", weight: float = 1.0, **params) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, name=name, weight=weight, params=params)


class WordTokenizer:
    """Stands in for a model's tokenizer: one id per whitespace-separated word."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        assert add_special_tokens is False
        return [hash(w) % 1000 for w in text.split()]


# --- the registry ----------------------------------------------------------------


TEXT_BUILTINS = {
    "sentiment",
    "length",
    "keywords",
    "keyword_check",
    "regex",
    "json_format",
    "tag_format",
    "exact_match",
    "numeric_match",
    "bleu",
    "rouge_l",
    "chrf",
    "embedding_similarity",
    "repetition",
    "eos_penalty",
}


def test_every_builtin_is_described_for_a_form() -> None:
    assert set(BUILTIN_SPECS) <= set(BUILTINS)
    assert set(BUILTIN_SPECS) >= TEXT_BUILTINS
    for kind, spec in BUILTIN_SPECS.items():
        assert isinstance(spec, BuiltinSpec) and spec.kind == kind
        assert spec.summary and len(spec.score_range) == 2
        for p in spec.params:
            assert p.help and p.type in PARAM_TYPES, (kind, p.name)
            if p.required:
                assert p.example is not None, (kind, p.name)
            elif p.default is not None:
                assert p.check(kind, p.default) == p.default, (kind, p.name)


@pytest.mark.parametrize("kind", sorted(BUILTIN_SPECS))
def test_every_builtin_names_an_unknown_parameter_and_lists_its_own(kind: str) -> None:
    spec = BUILTIN_SPECS[kind]
    allowed = ", ".join(p.name for p in spec.params) or "none"
    with pytest.raises(RewardConfigError) as info:
        BUILTINS[kind](bogus=1)
    assert str(info.value) == f"{kind}: unknown parameter 'bogus' (allowed parameters: {allowed})"


def test_a_form_prefilled_with_examples_builds_every_text_builtin() -> None:
    for kind in sorted(TEXT_BUILTINS):
        spec = BUILTIN_SPECS[kind]
        params = spec.example_params()
        assert {p.name for p in spec.params if p.required} <= set(params), kind
        assert callable(BUILTINS[kind](tokenizer=WordTokenizer(), **params)), kind


@pytest.mark.parametrize(
    ("kind", "params", "pattern"),
    [
        ("regex", {}, r"regex: parameter 'pattern' is required \(a non-empty string\)"),
        ("regex", {"pattern": "("}, r"regex: parameter 'pattern' is not a valid regular"),
        ("regex", {"pattern": "a", "mode": "all"}, r"'mode' must be one of search, full, count"),
        ("regex", {"pattern": "a", "dotall": "yes"}, r"'dotall' must be true or false"),
        ("json_format", {"top_level": "dict"}, r"'top_level' must be one of object, array, any"),
        ("json_format", {"required_keys": "name"}, r"'required_keys' must be a list of non-empty"),
        ("json_format", {"required_keys": ["a"], "top_level": "array"}, r"needs top_level"),
        ("tag_format", {"tags": ["<answer>"]}, r"'tags' holds '<answer>'.*not a tag name"),
        ("tag_format", {"tags": [""]}, r"'tags' must be a list of non-empty strings"),
        ("keyword_check", {}, r"keyword_check: give at least one keyword"),
        ("keyword_check", {"required": [3]}, r"'required' must be a list of non-empty strings"),
        ("exact_match", {"extract": "tag"}, r"'extract' must be one of whole, answer_tag, boxed"),
        ("exact_match", {"reference_column": ""}, r"'reference_column' must be a non-empty str"),
        ("numeric_match", {"tolerance": -0.1}, r"'tolerance' must be a non-negative number"),
        ("numeric_match", {"tolerance": "0.1"}, r"'tolerance' must be a non-negative number"),
        ("numeric_match", {"tolerance": math.inf}, r"'tolerance' must be a non-negative number"),
        ("bleu", {"lowercase": 1}, r"bleu: parameter 'lowercase' must be true or false"),
        ("chrf", {"word_order": 3}, r"'word_order' must be an integer from 0 to 2, got 3"),
        ("chrf", {"word_order": 1.0}, r"'word_order' must be an integer from 0 to 2"),
        ("repetition", {"n": 0}, r"repetition: parameter 'n' must be an integer from 1 to 32"),
        ("repetition", {"unit": "lines"}, r"'unit' must be one of words, tokens, chars"),
        ("repetition", {"unit": "tokens"}, r"repetition: unit 'tokens' needs the model's"),
        ("embedding_similarity", {}, r"give exactly one of 'target'.*or 'reference_column'"),
        (
            "embedding_similarity",
            {"target": "x", "reference_column": "reference"},
            r"give exactly one of",
        ),
        ("embedding_similarity", {"target": "x", "device": "tpu"}, r"'device' must be one of"),
    ],
)
def test_bad_parameters_fail_at_build_time_naming_the_parameter(kind, params, pattern) -> None:
    with pytest.raises(RewardConfigError, match=pattern):
        BUILTINS[kind](**params)


def test_a_renamed_component_names_itself_in_a_parameter_error() -> None:
    with pytest.raises(RewardConfigError, match=r"reward 'answer': numeric_match: .*'tolerance'"):
        build_reward([cfg("numeric_match", name="answer", tolerance=-1)])


# --- sentiment, length, keywords -------------------------------------------------


def test_sentiment_polarity() -> None:
    pos, neg, neutral = score(
        "sentiment",
        [
            "I love this, it is wonderful and amazing!",
            "This is terrible, awful and I hate it.",
            "The train leaves at noon.",
        ],
    )
    assert pos > 0.5
    assert neg < -0.5
    assert abs(neutral) < 0.1


def test_sentiment_rejects_params() -> None:
    with pytest.raises(RewardConfigError, match=r"sentiment.*'mode'.*allowed parameters: none"):
        BUILTINS["sentiment"](mode="x")


def test_length_chars_and_words() -> None:
    assert score("length", ["abcde", "", "abcdefghij", "abcdefghijklmno"], target=10) == [
        -0.5,
        -1.0,
        0.0,
        -0.5,
    ]
    assert score("length", ["one two  three\nfour", "a"], target=4, unit="words") == [0.0, -0.75]


def test_length_tokens_uses_tokenizer() -> None:
    class CharTokenizer:
        def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
            assert add_special_tokens is False
            return [ord(c) for c in text]

    assert score("length", ["ab", "abcd"], target=4, unit="tokens", tokenizer=CharTokenizer()) == [
        -0.5,
        0.0,
    ]


def test_length_tokens_without_tokenizer() -> None:
    with pytest.raises(RewardConfigError, match="tokenizer"):
        BUILTINS["length"](target=5, unit="tokens")


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({}, r"length.*'target' is required"),
        ({"target": 0}, r"length.*'target'.*positive integer"),
        ({"target": -3}, r"length.*'target'.*positive integer"),
        ({"target": "10"}, r"length.*'target'.*positive integer"),
        ({"target": True}, r"length.*'target'.*positive integer"),
        ({"target": 5, "unit": "lines"}, r"length.*'unit'.*chars, words, tokens"),
        ({"target": 5, "size": 1}, r"length.*unknown parameter 'size'.*target, unit"),
    ],
)
def test_length_bad_params(params: dict, pattern: str) -> None:
    with pytest.raises(RewardConfigError, match=pattern):
        BUILTINS["length"](**params)


def test_keywords_counts_whole_words_case_insensitive() -> None:
    text = "The Cat sat. A cat! concatenate cats CAT_x cat"
    assert score("keywords", [text], keywords=["cat"]) == [3.0]
    assert score("keywords", [text], keywords=["cat"], case_sensitive=True) == [2.0]


def test_keywords_distinct_and_special_characters() -> None:
    text = "I like C++ and c++ and rust, rust, rust."
    assert score("keywords", [text], keywords=["c++", "rust", "go"]) == [5.0]
    assert score("keywords", [text], keywords=["c++", "rust", "go"], per_occurrence=False) == [2.0]
    assert score("keywords", ["a.b", "axb"], keywords=["a.b"]) == [1.0, 0.0]


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": "cat"}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": []}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": ["cat", 3]}, r"keywords.*'keywords'.*non-empty list"),
        ({"keywords": ["cat"], "case_sensitive": "yes"}, r"keywords.*'case_sensitive'.*true"),
        ({"keywords": ["cat"], "per_occurrence": 1}, r"keywords.*'per_occurrence'.*true"),
    ],
)
def test_keywords_bad_params(params: dict, pattern: str) -> None:
    with pytest.raises(RewardConfigError, match=pattern):
        BUILTINS["keywords"](**params)


# --- keywords: required / forbidden ----------------------------------------------


def test_keyword_check_required_minus_forbidden() -> None:
    params = {"required": ["thanks", "please"], "forbidden": ["sorry", "cannot"]}
    texts = [
        "Please wait, and thanks!",  # both required, no forbidden -> 1
        "Thanks. Sorry, I cannot.",  # 1/2 required, 2/2 forbidden -> -0.5
        "Sorry.",  # 0 required, 1/2 forbidden -> -0.5
        "Thanksgiving pleases nobody",  # whole words only -> 0
    ]
    assert score("keyword_check", texts, **params) == [1.0, -0.5, -0.5, 0.0]
    assert score("keyword_check", ["THANKS"], required=["thanks"], case_sensitive=True) == [0.0]
    assert score("keyword_check", ["no"], forbidden=["yes"]) == [0.0]


# --- regex and format checks -----------------------------------------------------


def test_regex_search_full_and_count() -> None:
    texts = ["Answer: 42", "  Answer: 7  \n", "the answer: 3 and Answer: 4", "none"]
    assert score("regex", texts, pattern=r"Answer: \d+") == [1.0, 1.0, 1.0, 0.0]
    assert score("regex", texts, pattern=r"Answer: \d+", mode="full") == [1.0, 1.0, 0.0, 0.0]
    assert score("regex", texts, pattern=r"answer: \d+", mode="count", ignore_case=True) == [
        1.0,
        1.0,
        2.0,
        0.0,
    ]


def test_regex_dotall_for_a_think_then_answer_format() -> None:
    pattern = r"<think>.*?</think>\s*<answer>.*?</answer>"
    good = "<think>6 x 7\nis 42</think>\n<answer>42</answer>"
    swapped = "<answer>42</answer><think>6 x 7</think>"
    assert score("regex", [good, swapped], pattern=pattern, mode="full") == [0.0, 0.0]
    assert score("regex", [good, swapped], pattern=pattern, mode="full", dotall=True) == [1.0, 0.0]


def test_json_format_scores() -> None:
    texts = [
        '{"name": "Ada", "age": 36}',  # an object with both keys -> 1
        '```json\n{"name": "Ada"}\n```',  # fenced, one key of two -> 0.75
        "[1, 2, 3]",  # valid JSON, not an object -> 0.5
        '{"name": "Ada", "age": ',  # cut off -> 0
        'Sure! {"name": "Ada", "age": 36}',  # text around it -> 0 unless allowed
        "",
    ]
    assert score("json_format", texts, required_keys=["name", "age"]) == [
        1.0,
        0.75,
        0.5,
        0.0,
        0.0,
        0.0,
    ]
    assert score("json_format", texts, required_keys=["name", "age"], allow_extra_text=True) == [
        1.0,
        0.75,
        0.5,
        0.0,
        1.0,
        0.0,
    ]
    assert score("json_format", ["[1]", "{}", "3"], top_level="array") == [1.0, 0.5, 0.5]
    assert score("json_format", ["[1]", "{}", "3", "nope"], top_level="any") == [1, 1, 1, 0]


def test_tag_format_each_tag_once_around_text() -> None:
    texts = [
        "<think>hmm</think><answer>42</answer>",
        "<answer>42</answer> or <answer>43</answer>",  # twice -> not well formed
        "<think> </think><answer>4</answer>",  # blank think
        "</answer>42<answer>",  # wrong order
    ]
    assert score("tag_format", texts) == [1.0, 0.0, 1.0, 0.0]
    assert score("tag_format", texts, tags=["think", "answer"]) == [1.0, 0.0, 0.5, 0.0]


# --- verifiable answers ----------------------------------------------------------


def test_exact_match_normalises_and_extracts() -> None:
    refs = {"reference": ["Paris", "Carbon dioxide", "366", ["H2O", "water"]]}
    texts = ["  paris.", "**Carbon   Dioxide**", "It has 366 days.", "Water!"]
    assert score("exact_match", texts, refs) == [1.0, 1.0, 0.0, 1.0]
    assert score("exact_match", texts, refs, mode="contains") == [1.0, 1.0, 1.0, 1.0]
    assert score("exact_match", texts, refs, case_sensitive=True) == [0.0, 0.0, 0.0, 0.0]
    tagged = ["I think <answer>Paris</answer>", "<answer>CO2</answer>", "366", "no tag"]
    assert score("exact_match", tagged, refs, extract="answer_tag") == [1.0, 0.0, 0.0, 0.0]
    lines = ["Let me see.\nParis\n\n", r"so \boxed{Carbon dioxide}", "366\nor not", "water"]
    assert score("exact_match", lines, refs, extract="last_line") == [1.0, 0.0, 0.0, 1.0]
    assert score("exact_match", lines, refs, extract="boxed") == [0.0, 1.0, 0.0, 0.0]
    assert score("exact_match", lines, refs, extract="first_line") == [0.0, 0.0, 1.0, 1.0]


def test_exact_match_contains_matches_whole_words_only() -> None:
    refs = {"reference": ["4", "cat"]}
    assert score("exact_match", ["14 or 41", "concatenate"], refs, mode="contains") == [0.0, 0.0]


def test_numeric_match_finds_the_number() -> None:
    refs = {"answer": [42, "1,234", "-3", "0.5", 7]}
    texts = [
        "6 x 7 = 42.",
        "The total is 1,234 apples",
        "5 - 8 gives -3",
        "Half: .5",
        "7 or 8",  # the last number is 8
    ]
    assert score("numeric_match", texts, refs) == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert score("numeric_match", texts, refs, extract="first_number") == [0, 1, 0, 1, 1]
    assert score("numeric_match", ["42", "42.", " 42 ", "42 apples"], {"answer": [42] * 4},
                 extract="whole") == [1.0, 1.0, 1.0, 0.0]  # fmt: skip
    assert score("numeric_match", ["3.14159"], {"answer": [3.14]}) == [0.0]
    assert score("numeric_match", ["3.14159"], {"answer": [3.14]}, tolerance=0.01) == [1.0]
    assert score("numeric_match", ["5-3=2"], {"answer": [-3]}) == [0.0]  # "-3" is not a number


def test_numeric_match_in_tags_and_boxes() -> None:
    refs = {"answer": [12, 12, 12]}
    texts = ["3 x 4 <answer>12</answer> (not 13)", r"3 x 4 = \boxed{12} not 13", "12"]
    assert score("numeric_match", texts, refs, extract="answer_tag") == [1.0, 0.0, 0.0]
    assert score("numeric_match", texts, refs, extract="boxed") == [0.0, 1.0, 0.0]


def test_reference_errors_name_the_column_and_the_sample() -> None:
    with pytest.raises(RewardError, match=r"needs the column 'answer'.*columns here: reference"):
        score("numeric_match", ["4"], {"reference": ["4"]})
    with pytest.raises(RewardError, match=r"sample 1: the reference 'four' in column 'answer'"):
        score("numeric_match", ["4", "4"], {"answer": ["4", "four"]})
    with pytest.raises(RewardError, match=r"sample 0 has no usable reference in column 'ref'"):
        score("rouge_l", ["x"], {"ref": [None]}, reference_column="ref")
    with pytest.raises(RewardError, match=r"reward 'answer': needs the column 'answer'"):
        build_reward([cfg("numeric_match", name="answer")])(["p"], ["4"])


# --- reference metrics -----------------------------------------------------------


def test_bleu_on_hand_computed_pairs() -> None:
    refs = {"reference": ["a b c e", "the cat sat on the mat", "x y z w"]}
    got = score("bleu", ["a b c d", "the cat sat on the mat", "p q r s"], refs)
    # a b c d vs a b c e: precisions 3/4, 2/3, 1/2 and, smoothed, 1/(2 x 1) for the
    # unmatched 4-gram; equal lengths, so no brevity penalty: (3/4 x 2/3 x 1/2 x 1/2)^(1/4).
    assert got[0] == pytest.approx((0.75 * (2 / 3) * 0.5 * 0.5) ** 0.25)
    assert got[1] == pytest.approx(1.0)
    assert got[2] == 0.0
    assert score("bleu", ["THE CAT"], {"reference": ["the cat"]}, lowercase=True) == [
        pytest.approx(1.0)
    ]


def test_rouge_l_on_hand_computed_pairs() -> None:
    refs = {"summary": ["the cat lay down", ["dogs bark", "the cats sat down"]]}
    # LCS of "the cat sat down" and "the cat lay down" is 3 of 4 words each way: F1 = 0.75.
    # With stemming "cats" is "cat", so the second reference matches all 4 words.
    got = score("rouge_l", ["the cat sat down"] * 2, refs, reference_column="summary")
    assert got == [pytest.approx(0.75), pytest.approx(1.0)]


def test_chrf_identical_disjoint_and_closer_is_higher() -> None:
    refs = {"reference": ["hello there"] * 4}
    got = score("chrf", ["hello there", "xyz qqq", "hello where", "jelly"], refs)
    assert got[0] == pytest.approx(1.0) and got[1] == 0.0
    assert 0.0 < got[3] < got[2] < 1.0
    assert score("chrf", ["hello there"], {"reference": [["nope", "hello there"]]}) == [
        pytest.approx(1.0)
    ]


# --- embedding similarity --------------------------------------------------------


def test_embedding_similarity_known_scores() -> None:
    # all-MiniLM-L6-v2's published cosine for this pair is 0.7553 (its model card's example).
    refs = {"reference": ["A man is eating a piece of bread.", "A man is eating food.", "x"]}
    texts = ["A man is eating food.", "A man is eating food.", "   "]
    got = score("embedding_similarity", texts, refs, reference_column="reference", device="cpu")
    assert got[0] == pytest.approx(0.7553, abs=1e-3)
    assert got[1] == pytest.approx(1.0, abs=1e-5)
    assert got[2] == 0.0  # blank completion
    target = score(
        "embedding_similarity",
        ["The girl is carrying a baby.", "A man is riding a horse.", "A woman eats a sandwich."],
        target="Someone is having a meal.",
        device="cpu",
    )
    assert target[2] > 0.4 > max(target[0], target[1])


# --- repetition and the EOS penalty ----------------------------------------------


def test_repetition_share_of_repeated_ngrams() -> None:
    texts = ["a b a b a b", "one two three four", "hi", ""]
    # bigrams of "a b a b a b": ab ba ab ba ab -> 2 distinct of 5 -> -(1 - 2/5)
    assert score("repetition", texts, n=2) == [pytest.approx(-0.6), 0.0, 0.0, 0.0]
    assert score("repetition", ["go go go go"], n=1) == [pytest.approx(-0.75)]
    assert score("repetition", ["abab"], n=2, unit="chars") == [pytest.approx(-1 / 3)]
    tok = WordTokenizer()
    assert score("repetition", ["x y x y"], n=2, unit="tokens", tokenizer=tok) == [
        pytest.approx(-1 / 3)
    ]


def test_eos_penalty_reads_the_finished_column() -> None:
    finished = {FINISHED_COLUMN: [True, False, True]}
    got = score("eos_penalty", ["done.", "and then the", ""], finished)
    assert got == [0.0, -1.0, 0.0]
    with pytest.raises(RewardError, match=r"needs the column 'finished' \(set by the training"):
        score("eos_penalty", ["x"])
    with pytest.raises(RewardError, match=r"must hold true/false, got 'yes' for sample 0"):
        score("eos_penalty", ["x"], {FINISHED_COLUMN: ["yes"]})


def test_the_training_loop_passes_finished_to_rewards() -> None:
    """The EOS penalty seen by the loop agrees with the rollout's own ended fraction."""
    cfg_ = tiny_config(
        {
            "reward.components": [{"kind": "eos_penalty"}, {"kind": "repetition"}],
            "training.steps": 3,
            "training.checkpoint_every": 0,
            "generation.max_new_tokens": 4,
        }
    )
    metrics = [e.values for e in train(cfg_) if isinstance(e, Metrics)]
    assert len(metrics) == 3
    for values in metrics:
        assert values["reward/eos_penalty"] == pytest.approx(values["response/ended_frac"] - 1)
        assert -1.0 <= values["reward/repetition"] <= 0.0


# --- the shipped recipes ---------------------------------------------------------


def test_every_shipped_recipe_builds_its_reward_on_its_prompts() -> None:
    """Each recipe's reward scores a batch of its own prompt set's rows (columns included)."""
    for path in sorted((assets_dir() / "recipes").glob("*.toml")):
        run = load_config(path)
        prompts = load_prompts(run.data, run.base_dir)
        kinds = {c.kind for c in run.reward.components}
        if kinds & {"judge", "reward_model", "embedding_similarity"}:
            continue  # these load a model; their own tests cover them
        reward = build_reward(run.reward.components, WordTokenizer(), base_dir=run.base_dir)
        texts, columns = prompts.batch(range(min(4, len(prompts))))
        columns[FINISHED_COLUMN] = [True] * len(texts)
        try:
            result = reward(texts, ["a reply"] * len(texts), **columns)
        finally:
            reward.close()
        assert len(result.total) == len(texts), path.name
        assert all(np.isfinite(result.total)), path.name


class _WordTokens:
    """A tokenizer whose tokens are words: lengths the comments below can count."""

    def encode(self, text, add_special_tokens=False):
        return text.split()


def test_overlong_punishes_softly_near_the_limit():
    from core.rewards.builtin.builtins import BUILTINS

    reward = BUILTINS["overlong"](tokenizer=_WordTokens(), max_length=10, cache=4)
    words = lambda n: " ".join(["w"] * n)  # noqa: E731
    # free = 10 - 4 = 6: 0 up to 6 tokens; 8 -> (6 - 8) / 4 = -0.5; 10 -> -1; 12 -> -1
    assert reward([""] * 5, [words(n) for n in (3, 6, 8, 10, 12)]) == [0.0, 0.0, -0.5, -1.0, -1.0]


def test_overlong_refuses_a_band_wider_than_the_limit():
    from core.rewards.builtin.builtins import BUILTINS
    from core.rewards.errors import RewardConfigError

    with pytest.raises(
        RewardConfigError, match="cache \\(20\\) must be at most max_length \\(10\\)"
    ):
        BUILTINS["overlong"](tokenizer=_WordTokens(), max_length=10, cache=20)
