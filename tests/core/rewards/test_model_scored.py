"""The AI judge (RLAIF) and the sequence-classification reward model, on tiny models."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from core.lm.sources import default_tokenizer_dir, load_tokenizer
from core.rewards import BUILTINS, RewardConfigError, build_reward
from core.rewards.builtin.builtins import BUILTIN_SPECS
from core.rewards.model_scored import scorer
from core.rewards.model_scored.scorer import LoadedScorer

PROMPTS = [
    "Say hello.",
    "Write a short poem about the sea, with waves and gulls and a lighthouse.",
    "Name a colour.",
    "Say hello.",
    "Explain why the sky is blue in one sentence.",
    "Thank the neighbour.",
]
COMPLETIONS = [
    "Hello there, friend!",
    "Waves roll in, gulls cry, the lighthouse keeps its watch.",
    "Blue",
    "Go away.",
    "Air scatters blue light more than red light.",
    "Thanks so much for watering my plants while I was away!",
]
QUESTION = "Request: {prompt}\nReply: {completion}\nIs the reply polite? Answer yes or no."


def make_judge(**params):
    return BUILTINS["judge"](model="tiny-random", **params)


def component(kind: str, **params) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, name="", weight=1.0, params=params)


# --- the judge on tiny-random ----------------------------------------------------


@pytest.mark.parametrize("mode", ["yes_no", "rating"])
def test_judge_scores_are_probabilities_and_batching_does_not_change_them(mode):
    batched = make_judge(mode=mode, question=QUESTION, batch_size=16)
    one_by_one = make_judge(mode=mode, question=QUESTION, batch_size=1, cache_size=0)
    scores = batched(PROMPTS, COMPLETIONS)
    alone = [one_by_one([p], [c])[0] for p, c in zip(PROMPTS, COMPLETIONS)]
    assert len(scores) == len(COMPLETIONS)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert torch.allclose(torch.tensor(scores), torch.tensor(alone), rtol=1e-4, atol=1e-6)
    assert len(set(scores)) > 1  # different texts, different scores: the judge reads them


def test_the_cache_answers_repeated_texts_without_the_model(monkeypatch):
    judge = make_judge(question=QUESTION)
    first = judge(PROMPTS[:3] + PROMPTS[:1], COMPLETIONS[:3] + COMPLETIONS[:1])
    assert (judge.cache_hits, judge.cache_misses) == (1, 3)  # a duplicate inside the batch
    assert first[3] == first[0]

    def no_model(pairs):
        raise AssertionError(f"the model was asked again about {pairs}")

    monkeypatch.setattr(judge, "score_batch", no_model)
    again = judge(PROMPTS[:3], COMPLETIONS[:3])
    assert again == first[:3]
    assert (judge.cache_hits, judge.cache_misses) == (4, 3)
    # the same completion after another prompt is a different question
    monkeypatch.undo()
    judge([PROMPTS[2]], [COMPLETIONS[0]])
    assert judge.cache_misses == 4


def test_the_cache_forgets_the_least_recently_used_beyond_its_size():
    judge = make_judge(question=QUESTION, cache_size=2)
    judge(PROMPTS[:3], COMPLETIONS[:3])  # keeps the last two scored
    judge(PROMPTS[:3], COMPLETIONS[:3])
    assert judge.cache_hits + judge.cache_misses == 6
    assert judge.cache_misses >= 4  # at least one of three had to be scored again
    off = make_judge(question=QUESTION, cache_size=0)
    off(PROMPTS[:2], COMPLETIONS[:2])
    off(PROMPTS[:2], COMPLETIONS[:2])
    assert (off.cache_hits, off.cache_misses) == (0, 4)


def test_the_judge_model_loads_on_the_first_batch_and_goes_when_the_run_ends():
    scorer.unload_models()
    reward = build_reward([component("judge", model="tiny-random", question=QUESTION)])
    assert not scorer._loaded
    first = reward(["Hi."], ["Hello!"]).total
    assert list(scorer._loaded) == [("judge", "tiny-random", "cpu")]
    reward.close()
    assert not scorer._loaded
    assert reward(["Hi.", "Bye."], ["Hello!", "Bye!"]).total[0] == first[0]  # from the cache
    assert list(scorer._loaded) == [("judge", "tiny-random", "cpu")]  # loaded again


def test_a_judge_works_inside_a_weighted_composite():
    reward = build_reward(
        [component("judge", model="tiny-random", question=QUESTION), component("length", target=20)]
    )
    result = reward(PROMPTS, COMPLETIONS)
    assert set(result.components) == {"judge", "length"}
    assert all(0.0 <= s <= 1.0 for s in result.components["judge"])


# --- the arithmetic, on a model whose next-token distribution we choose ----------------


class FixedLM(torch.nn.Module):
    """Returns chosen next-token probabilities: ``first`` for the question, ``after_one``
    for the position after an appended "1" (the second read of a rating)."""

    def __init__(self, vocab: int, first: dict[int, float], after_one: dict[int, float]):
        super().__init__()
        self.vocab, self.first, self.after_one, self.calls = vocab, first, after_one, 0

    def _logits(self, probs: dict[int, float], batch: int) -> torch.Tensor:
        p = torch.full((self.vocab,), 1e-12)
        rest = 1.0 - sum(probs.values())
        p += rest / self.vocab
        for token, value in probs.items():
            p[token] = value
        return p.log().expand(batch, 1, -1)

    def forward(self, input_ids, past_key_values=None, **kwargs):
        self.calls += 1
        probs = self.after_one if past_key_values is not None else self.first
        return SimpleNamespace(
            logits=self._logits(probs, input_ids.shape[0]), past_key_values="cache"
        )


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(default_tokenizer_dir()))


def judge_on(monkeypatch, tokenizer, lm, **params):
    judge = make_judge(**params)
    loaded = LoadedScorer(lm, tokenizer, torch.device("cpu"), torch.float32)
    monkeypatch.setattr(judge, "_loaded", lambda: loaded)
    return judge


def token(tokenizer, text: str) -> int:
    (only,) = tokenizer.encode(text, add_special_tokens=False)
    return only


def test_yes_no_pools_the_spellings_of_yes_against_those_of_no(monkeypatch, tokenizer):
    first = {
        token(tokenizer, "yes"): 0.3,
        token(tokenizer, " Yes"): 0.1,
        token(tokenizer, "No"): 0.2,
        token(tokenizer, "maybe"): 0.3,
    }
    lm = FixedLM(len(tokenizer), first, {})
    judge = judge_on(monkeypatch, tokenizer, lm)
    [score] = judge(["p"], ["c"])
    assert score == pytest.approx(0.4 / 0.6, abs=1e-4)
    assert judge.last_answer_mass[("p", "c")] == pytest.approx(0.6, abs=1e-3)


def test_rating_is_the_expected_value_and_reads_ten_from_two_tokens(monkeypatch, tokenizer):
    one, zero = token(tokenizer, "1"), token(tokenizer, "0")
    assert tokenizer.encode("10", add_special_tokens=False) == [one, zero]
    # Half the mass on "1", which is followed by "0" one time in four: P(10) = 0.125.
    first = {one: 0.5, token(tokenizer, "4"): 0.25, token(tokenizer, "7"): 0.25}
    lm = FixedLM(len(tokenizer), first, {zero: 0.25})
    judge = judge_on(monkeypatch, tokenizer, lm, mode="rating")
    [score] = judge(["p"], ["c"])
    expected = 0.375 * 1 + 0.125 * 10 + 0.25 * 4 + 0.25 * 7
    assert score == pytest.approx((expected - 1) / 9, abs=1e-4)
    assert lm.calls == 2  # one read of the question, one more after "1"


def test_a_rating_of_ten_scores_one_and_of_one_scores_zero(monkeypatch, tokenizer):
    one, zero = token(tokenizer, "1"), token(tokenizer, "0")
    lm = FixedLM(len(tokenizer), {one: 0.99}, {zero: 0.999})
    assert judge_on(monkeypatch, tokenizer, lm, mode="rating")(["p"], ["c"])[0] > 0.99
    lm = FixedLM(len(tokenizer), {one: 0.99}, {token(tokenizer, "."): 0.999})
    assert judge_on(monkeypatch, tokenizer, lm, mode="rating")(["p"], ["c"])[0] < 0.01


# --- the judge's settings are checked when the recipe is read --------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"question": "Is this polite? {prompt}"}, "must contain the placeholder {completion}"),
        ({"question": "Polite? {completion} {answer}"}, "unknown placeholder {answer}"),
        ({"question": "Polite? {completion!r}"}, "unknown placeholder {completion!r}"),
        ({"question": "Polite? {completion"}, "not a valid template"),
        ({"mode": "stars"}, "parameter 'mode' must be one of yes_no, rating"),
        ({"batch_size": 0}, "parameter 'batch_size'"),
        ({"model": "./no/such/judge"}, "no such file or folder"),
        ({"temperature": 1.0}, "unknown parameter 'temperature'"),
    ],
)
def test_bad_judge_settings_fail_at_build_time_naming_the_parameter(params, message):
    with pytest.raises(RewardConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        build_reward([component("judge", **params)])


def test_literal_braces_in_a_question_are_allowed():
    judge = make_judge(question='Reply: {completion}\nIs it JSON like {{"a": 1}}? yes or no')
    assert judge.question.format(prompt="", completion="x").endswith('{"a": 1}? yes or no')


def test_judge_and_reward_model_are_described_for_the_ui():
    for kind in ("judge", "reward_model"):
        spec = BUILTIN_SPECS[kind]
        assert spec.summary and all(p.help for p in spec.params)
    assert BUILTIN_SPECS["judge"].score_range == (0.0, 1.0)


# --- the sequence-classification reward model ------------------------------------------


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_dir())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=2,
        id2label={0: "RUDE", 1: "POLITE"},
        label2id={"RUDE": 0, "POLITE": 1},
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config)
    out = tmp_path_factory.mktemp("reward-model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_reward_model_scores_the_positive_logit_batched_as_alone(classifier_dir):
    reward = BUILTINS["reward_model"](path=str(classifier_dir))
    alone = BUILTINS["reward_model"](path=str(classifier_dir), batch_size=1, cache_size=0)
    scores = reward(PROMPTS, COMPLETIONS)
    singles = [alone([p], [c])[0] for p, c in zip(PROMPTS, COMPLETIONS)]
    assert torch.allclose(torch.tensor(scores), torch.tensor(singles), rtol=1e-4, atol=1e-5)
    assert len(set(scores)) > 1
    # the same number the model gives for one text pair, class 1 (POLITE)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    tok = AutoTokenizer.from_pretrained(classifier_dir)
    with torch.no_grad():
        logits = model(**tok(PROMPTS[1], COMPLETIONS[1], return_tensors="pt")).logits
    assert scores[1] == pytest.approx(float(logits[0, 1]), abs=1e-4)
    reward(PROMPTS, COMPLETIONS)
    assert reward.cache_hits == len(PROMPTS)


def test_reward_model_probability_and_class_by_name(classifier_dir):
    polite = BUILTINS["reward_model"](path=str(classifier_dir), output="probability")
    rude = BUILTINS["reward_model"](path=str(classifier_dir), output="probability", label="RUDE")
    p, r = polite(PROMPTS, COMPLETIONS), rude(PROMPTS, COMPLETIONS)
    assert all(0.0 <= x <= 1.0 for x in p)
    assert torch.allclose(torch.tensor(p) + torch.tensor(r), torch.ones(len(p)), atol=1e-5)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "parameter 'path' is required"),
        ({"path": "no/such/folder"}, "is not a model folder"),
        ({"label": "HAPPY"}, "has no class 'HAPPY'"),
        ({"label_index": 2}, "'label_index' must be below 2"),
        ({"label": "RUDE", "label_index": 0}, "not both"),
        ({"output": "softmax"}, "parameter 'output' must be one of logit, probability"),
    ],
)
def test_bad_reward_model_settings_fail_at_build_time(classifier_dir, params, message):
    if "path" not in params and params:
        params = {"path": str(classifier_dir), **params}
    with pytest.raises(RewardConfigError, match=message):
        build_reward([component("reward_model", **params)])


# --- the real judge --------------------------------------------------------------------


@pytest.mark.slow
def test_the_default_judge_prefers_polite_replies_to_rude_ones():
    judge = BUILTINS["judge"](
        question=(
            "Here is a request and a reply.\n\nRequest: {prompt}\n\nReply: {completion}\n\n"
            "Is the reply polite? Answer with yes or no."
        ),
        system="You are a careful judge of tone. You answer only yes or no.",
    )
    polite = [
        "Of course! The train station is two blocks north, next to the library. Have a nice trip!",
        "Sure, happy to help. Walk straight ahead and turn left at the bakery.",
        "Thank you for asking! The station is on Main Street, about five minutes from here.",
        "I'd be glad to help. It's just around the corner on your right. Safe travels!",
    ]
    rude = [
        "Figure it out yourself, idiot. I'm not your map.",
        "Ugh, stop bothering me. Nobody cares where you're going.",
        "Are you stupid? It's obviously over there. Get lost.",
        "Shut up and go away. Find it yourself, moron.",
    ]
    scores = judge(["Can you tell me where the train station is?"] * 8, polite + rude)
    # A 135M judge is weak: it separates the means, not every pair, by a clear margin.
    assert sum(scores[:4]) / 4 > sum(scores[4:]) / 4 + 0.05
