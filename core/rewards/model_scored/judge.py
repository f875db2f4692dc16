"""AI feedback (RLAIF): a local instruct model judges each completion.

The judge reads a question the user writes, a template with ``{prompt}`` and
``{completion}``, wrapped in the judge's chat template when it has one. It does
not generate: the score is read from its next-token distribution.

* ``mode = "yes_no"``: P(yes) / (P(yes) + P(no)), pooling every single-token
  spelling of "yes" ("yes", "Yes", " yes", ...) against the same spellings of
  "no". In [0, 1].
* ``mode = "rating"``: the expected value E of a 1-10 rating, over the tokens
  for 1..10 (the distribution restricted to them and renormalised), reported
  as (E - 1) / 9 so that it also lies in [0, 1]. Tokenizers that split digits
  (SmolLM2, Llama 3, ...) write "10" as "1" then "0"; the mass on "1" is then
  split by reading one more position with "1" appended (reusing the KV cache):
  P(10) = P("1") * P("0" | "1") and P(1) = P("1") - P(10). A "1" followed by
  anything but "0" counts as 1.

The judge model loads on first use (not when the recipe is checked), shared by
every judge of that model and device in the process, in eval mode without
gradients, and is let go when the run ends (``close``). Scores are cached by
(prompt, completion) text in an LRU dict: repeated completions (common once a
policy converges) cost nothing.
"""

from __future__ import annotations

import copy
import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.lm import looks_like_path
from core.lm.kv_cache import cache_kwarg, cache_of
from core.rewards.errors import RewardConfigError, RewardError
from core.rewards.model_scored.scorer import (
    BATCH_SIZE_PARAM,
    CACHE_SIZE_PARAM,
    DEVICE_PARAM,
    CachedScorer,
    LoadedScorer,
    Pair,
    check_device,
    shared_model,
)
from core.rewards.params import BuiltinSpec, Param

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

JUDGE_MODES = ("yes_no", "rating")
CHAT_TEMPLATE_CHOICES = ("auto", "on", "off")
TEMPLATE_FIELDS = ("prompt", "completion")

DEFAULT_QUESTIONS = {
    "yes_no": (
        "Here is a request and a reply.\n\nRequest: {prompt}\n\nReply: {completion}\n\n"
        "Is the reply helpful and appropriate? Answer with yes or no."
    ),
    "rating": (
        "Here is a request and a reply.\n\nRequest: {prompt}\n\nReply: {completion}\n\n"
        "Rate the reply from 1 (bad) to 10 (excellent). Answer with the number only."
    ),
}

_YES = ("yes", "Yes", "YES")
_NO = ("no", "No", "NO")


# ---- the judge's parameter checks -----------------------------------------------------


def check_template(component: str, template: Any) -> str:
    """A question with {completion} (and optionally {prompt}); nothing else in braces."""
    if not isinstance(template, str) or not template.strip():
        raise RewardConfigError(
            f"{component}: parameter 'question' must be a non-empty string, got {template!r}"
        )
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise RewardConfigError(
            f"{component}: parameter 'question' is not a valid template ({exc}); "
            "write literal braces as {{ and }}"
        ) from None
    names = set()
    for _text, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise RewardConfigError(
                f"{component}: parameter 'question' has an unknown placeholder {shown} "
                "(allowed: {prompt} and {completion}; write literal braces as {{ and }})"
            )
        names.add(name)
    if "completion" not in names:
        raise RewardConfigError(
            f"{component}: parameter 'question' must contain the placeholder {{completion}} "
            "(and usually {prompt}), so the judge sees the text it is judging"
        )
    return template


def looks_like_missing_path(name: str) -> bool:
    """A model name that is clearly meant as a file or folder, and is not there."""
    if Path(name).expanduser().exists():
        return False
    return looks_like_path(name)


# ---- the judge ------------------------------------------------------------------------


def _single_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """Ids of the spellings (bare and after a space) that are exactly one token."""
    ids: list[int] = []
    for word in words:
        for text in (word, " " + word):
            encoded = tokenizer.encode(text, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(encoded[0])
    return ids


@dataclass(frozen=True)
class RatingTokens:
    """Token ids for the ratings 1..10 (``digits[k - 1]`` for rating k), and the
    (first, second) pairs that spell "10" in two tokens."""

    digits: tuple[tuple[int, ...], ...]
    ten_in_two: tuple[tuple[int, int], ...]


def rating_tokens(tokenizer: Any) -> RatingTokens:
    digits = [tuple(_single_token_ids(tokenizer, [str(k)])) for k in range(1, 11)]
    one_ids = set(digits[0])
    ten_in_two: list[tuple[int, int]] = []
    for text in ("10", " 10"):
        encoded = tokenizer.encode(text, add_special_tokens=False)
        pair = tuple(encoded)
        if len(encoded) == 2 and encoded[0] in one_ids and pair not in ten_in_two:
            ten_in_two.append((encoded[0], encoded[1]))
    if not all(digits[:9]):
        missing = [str(k) for k in range(1, 10) if not digits[k - 1]]
        raise RewardError(
            f"judge: the judge's tokenizer has no single token for {', '.join(missing)}; "
            "use mode = 'yes_no' with this model"
        )
    return RatingTokens(tuple(digits), tuple(ten_in_two))


class Judge(CachedScorer):
    """A local causal LM asked a question about each (prompt, completion); see the module."""

    def __init__(
        self,
        model: str,
        mode: str,
        question: str,
        chat_template: str,
        system: str | None,
        device: torch.device,
        batch_size: int,
        cache_size: int,
    ) -> None:
        super().__init__(batch_size, cache_size)
        self.model_name = model
        self.mode = mode
        self.question = question
        self.chat_template = chat_template
        self.device = device
        self.system = system
        self.model_key = ("judge", model, str(device))
        self.last_answer_mass: dict[Pair, float] = {}
        """For each pair the model scored in the last call: the probability the judge
        put on the answer tokens at all. A low value means it wanted to say something
        else, and its score is a weak signal."""
        self._tokens: Any = None

    def _loaded(self) -> LoadedScorer:
        from core.lm.sources import load_lm

        def load():
            log.info("loading the judge %s on %s", self.model_name, self.device)
            model, tokenizer, _source = load_lm(self.model_name)
            return model, tokenizer

        try:
            return shared_model(self.model_key, load, self.device)
        except Exception as exc:
            raise RewardError(f"judge: could not load model {self.model_name!r}: {exc}") from exc

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        self.last_answer_mass = {}
        return super().__call__(prompts, completions, **columns)

    def format(self, tokenizer: Any, prompt: str, completion: str) -> tuple[str, bool]:
        """The judge's input text, and whether its chat template was applied."""
        question = self.question.format(prompt=prompt, completion=completion)
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if self.chat_template == "off" or (self.chat_template == "auto" and not has_template):
            return (f"{self.system}\n\n{question}" if self.system else question), False
        if not has_template:
            raise RewardError(
                "judge: chat_template = 'on' but the judge model's tokenizer has no chat template"
            )
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": question})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, True

    def _answer_tokens(self, tokenizer: Any) -> Any:
        if self._tokens is None:
            if self.mode == "yes_no":
                yes, no = _single_token_ids(tokenizer, _YES), _single_token_ids(tokenizer, _NO)
                if not yes or not no or set(yes) & set(no):
                    raise RewardError(
                        "judge: the judge's tokenizer has no single token for 'yes' and 'no'"
                    )
                self._tokens = (yes, no)
            else:
                self._tokens = rating_tokens(tokenizer)
        return self._tokens

    def score_batch(self, pairs: list[Pair]) -> list[float]:
        import torch

        from core.lm.device import autocast
        from core.lm.forward import position_ids_for

        loaded = self._loaded()
        tokenizer = loaded.tokenizer
        formatted = [self.format(tokenizer, p, c) for p, c in pairs]
        enc = tokenizer(
            [text for text, _ in formatted],
            return_tensors="pt",
            padding=True,
            add_special_tokens=not formatted[0][1],  # a chat template writes its own
        )
        ids = enc["input_ids"].to(loaded.device)
        mask = enc["attention_mask"].to(loaded.device)
        positions = position_ids_for(mask)
        tokens = self._answer_tokens(tokenizer)
        two_step = self.mode == "rating" and bool(tokens.ten_in_two)
        with autocast(loaded.device, loaded.dtype):
            out = loaded.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=two_step,
                logits_to_keep=1,
            )
            logp = out.logits[:, -1].float().log_softmax(-1)
            if self.mode == "yes_no":
                yes, no = tokens
                lse_yes, lse_no = logp[:, yes].logsumexp(-1), logp[:, no].logsumexp(-1)
                scores = torch.sigmoid(lse_yes - lse_no)
                mass = torch.logaddexp(lse_yes, lse_no).exp()
            else:
                scores, mass = self._rating(loaded, logp, out, mask, positions, tokens)
        self.last_answer_mass.update(zip(pairs, mass.tolist()))
        return scores.tolist()

    def _rating(self, loaded, logp, out, mask, positions, tokens: RatingTokens):
        import torch

        probs = logp.exp()
        batch = probs.shape[0]
        masses = torch.stack(
            [
                probs[:, list(ids)].sum(-1) if ids else probs.new_zeros(batch)
                for ids in tokens.digits
            ],
            dim=-1,
        )  # [B, 10]: rating k at column k - 1
        firsts: dict[int, list[int]] = {}
        for first, second in tokens.ten_in_two:
            firsts.setdefault(first, []).append(second)
        for n, (first, seconds) in enumerate(firsts.items()):
            # Each step appends to the cache in place: copy it unless this is the last use.
            cache = cache_of(out)
            if n < len(firsts) - 1:
                cache = copy.deepcopy(cache)
            step = loaded.model(
                input_ids=torch.full((batch, 1), first, dtype=torch.long, device=mask.device),
                attention_mask=torch.cat([mask, mask.new_ones(batch, 1)], dim=1),
                position_ids=positions[:, -1:] + 1,
                **cache_kwarg(loaded.model, cache),
                use_cache=True,
                logits_to_keep=1,
            )
            then_zero = step.logits[:, -1].float().softmax(-1)[:, seconds].sum(-1)
            ten = probs[:, first] * then_zero
            masses[:, 9] += ten
            masses[:, 0] -= ten
        total = masses.sum(-1)
        ratings = torch.arange(1, 11, dtype=masses.dtype, device=masses.device)
        expected = (masses * ratings).sum(-1) / total.clamp_min(1e-30)
        return ((expected - 1) / 9).clamp(0.0, 1.0), total


def _build_judge(
    *,
    tokenizer: Any,
    model: str,
    mode: str,
    question: str | None,
    system: str | None,
    chat_template: str,
    device: str,
    batch_size: int,
    cache_size: int,
) -> Judge:
    """The judge from checked parameters; the policy's ``tokenizer`` is not used."""
    if looks_like_missing_path(model):
        raise RewardConfigError(f"judge: parameter 'model': no such file or folder: {model}")
    return Judge(
        model=model,
        mode=mode,
        question=check_template("judge", question or DEFAULT_QUESTIONS[mode]),
        chat_template=chat_template,
        system=system,
        device=check_device("judge", device),
        batch_size=batch_size,
        cache_size=cache_size,
    )


JUDGE = BuiltinSpec(
    kind="judge",
    summary="AI feedback: a local instruct model answers a question about each completion",
    score_range=(0.0, 1.0),
    params=(
        Param(
            "model",
            "str",
            "The judge: the bundled smollm2-135m-instruct, tiny-random (tests), a local "
            "Hugging Face folder or a .gguf file",
            default="smollm2-135m-instruct",
        ),
        Param(
            "mode",
            "str",
            "yes_no: P(yes) / (P(yes) + P(no)); rating: the expected 1-10 rating read from "
            "the next-token distribution, as (E - 1) / 9",
            default="yes_no",
            choices=JUDGE_MODES,
        ),
        Param(
            "question",
            "str",
            "What the judge is asked: a template with {completion} and usually {prompt} "
            "(literal braces as {{ }}); ask for yes/no or for a number from 1 to 10 to "
            "match the mode. Default: a general helpfulness question for the mode",
            example=DEFAULT_QUESTIONS["yes_no"],
        ),
        Param(
            "system",
            "str",
            "A system message for the judge (default: its chat template's own); without a "
            "chat template it goes before the question",
            example="You are a careful judge of tone. You answer only yes or no.",
        ),
        Param(
            "chat_template",
            "str",
            "Wrap the question in the judge's chat template: auto (when it has one), on, off",
            default="auto",
            choices=CHAT_TEMPLATE_CHOICES,
        ),
        DEVICE_PARAM,
        BATCH_SIZE_PARAM,
        CACHE_SIZE_PARAM,
    ),
    build=_build_judge,
    help=(
        "Scores in [0, 1] from one forward pass per batch, no generation. The judge is a "
        "second model in memory (about 540 MB in float32 for the default), loaded on the "
        "first scored batch. A 135M judge is weak: check it on a few obviously good and bad "
        "replies (rlstudio rate) before trusting it, and prefer a clear yes/no question."
    ),
)
"""The judge as a built-in reward: ``JUDGE(tokenizer=..., **params)`` returns a ``Judge``."""
