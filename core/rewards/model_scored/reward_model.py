"""A sequence-classification reward model from a local folder.

Any ``AutoModelForSequenceClassification`` checkpoint (a Hugging Face folder with
config.json) scores each completion, by default together with its prompt as a
text pair in the tokenizer's own pair format (``[CLS] prompt [SEP] completion [SEP]``
for BERT-like models). The score is the logit of the chosen class: the single
logit of a one-output reward model, else the class named by ``label`` (a name
from the model's id2label) or ``label_index``, class 1 by default for a two-class
model. With
``output = "probability"`` it is the sigmoid of the single logit, or the softmax
probability of the chosen class, in [0, 1].

Like the judge, it loads on first use, is shared within the process, is let go
when the run ends, and caches scores by (prompt, completion) text.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

OUTPUTS = ("logit", "probability")


def _read_config(path: Path) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except Exception as exc:
        raise RewardConfigError(
            f"reward_model: parameter 'path': cannot read {path / 'config.json'}: {exc}"
        ) from None


def _pick_label(config: Any, label: str | None, label_index: int | None) -> int:
    """The column of the logits to score, checked against the model's classes."""
    num_labels = int(config.num_labels)
    names = {str(v): int(k) for k, v in (getattr(config, "id2label", None) or {}).items()}
    if label is not None and label_index is not None:
        raise RewardConfigError("reward_model: set 'label' or 'label_index', not both")
    if label is not None:
        if label not in names:
            raise RewardConfigError(
                f"reward_model: parameter 'label': the model has no class {label!r} "
                f"(its classes: {', '.join(names) or 'unnamed'})"
            )
        return names[label]
    if label_index is not None:
        if label_index >= num_labels:
            raise RewardConfigError(
                f"reward_model: parameter 'label_index' must be below {num_labels} "
                f"(the model's number of classes), got {label_index}"
            )
        return label_index
    if num_labels == 1:
        return 0
    if num_labels == 2:
        return 1
    raise RewardConfigError(
        f"reward_model: the model has {num_labels} classes; set 'label' (one of "
        f"{', '.join(names) or 'its class names'}) or 'label_index' to the class to reward"
    )


class SequenceClassifierReward(CachedScorer):
    """Scores (prompt, completion) pairs with a sequence-classification model."""

    def __init__(
        self,
        path: Path,
        label: int,
        single_logit: bool,
        output: str,
        include_prompt: bool,
        max_length: int,
        device: torch.device,
        batch_size: int,
        cache_size: int,
    ) -> None:
        super().__init__(batch_size, cache_size)
        self.path = path
        self.label = label
        self.single_logit = single_logit
        self.output = output
        self.include_prompt = include_prompt
        self.max_length = max_length
        self.device = device
        self.model_key = ("reward_model", str(path), str(device))

    def _loaded(self) -> LoadedScorer:
        def load():
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            log.info("loading the reward model %s on %s", self.path, self.device)
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForSequenceClassification.from_pretrained(
                self.path, dtype=torch.float32
            )
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            if model.config.pad_token_id is None:
                # Decoder classifiers find each row's last real token through the pad id.
                model.config.pad_token_id = tokenizer.pad_token_id
            return model, tokenizer

        try:
            return shared_model(self.model_key, load, self.device)
        except Exception as exc:
            raise RewardError(
                f"reward_model: could not load {self.path}: {type(exc).__name__}: {exc}"
            ) from exc

    def score_batch(self, pairs: list[Pair]) -> list[float]:
        import torch

        from core.lm.device import autocast

        loaded = self._loaded()
        prompts = [p for p, _ in pairs]
        completions = [c for _, c in pairs]
        enc = loaded.tokenizer(
            *((prompts, completions) if self.include_prompt else (completions,)),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        )
        enc = {k: v.to(loaded.device) for k, v in enc.items()}
        with autocast(loaded.device, loaded.dtype):
            logits = loaded.model(**enc).logits.float()
        if self.output == "logit":
            scores = logits[:, self.label]
        elif self.single_logit:
            scores = torch.sigmoid(logits[:, 0])
        else:
            scores = logits.softmax(-1)[:, self.label]
        return scores.tolist()


def _build_reward_model(
    *,
    tokenizer: Any,
    path: str,
    label: str | None,
    label_index: int | None,
    output: str,
    include_prompt: bool,
    max_length: int,
    device: str,
    batch_size: int,
    cache_size: int,
) -> SequenceClassifierReward:
    """The reward model from checked parameters; the policy's ``tokenizer`` is not used."""
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise RewardConfigError(
            f"reward_model: parameter 'path': {path} is not a model folder (no config.json there)"
        )
    config = _read_config(folder)
    return SequenceClassifierReward(
        path=folder,
        label=_pick_label(config, label, label_index),
        single_logit=int(config.num_labels) == 1,
        output=output,
        include_prompt=include_prompt,
        max_length=max_length,
        device=check_device("reward_model", device),
        batch_size=batch_size,
        cache_size=cache_size,
    )


REWARD_MODEL = BuiltinSpec(
    kind="reward_model",
    summary="A sequence-classification reward model from a local folder scores each completion",
    score_range=(None, None),
    params=(
        Param(
            "path",
            "str",
            "A local Hugging Face folder (config.json) with a sequence-classification model; "
            "a relative path is taken from the working directory",
            required=True,
            example="models/my-reward-model",
        ),
        Param(
            "label",
            "str",
            "The class to reward, by name (from the model's id2label); default: the single "
            "output of a one-output model, class 1 of a two-class model",
        ),
        Param("label_index", "int", "The class to reward, by index (instead of label)", min=0),
        Param(
            "output",
            "str",
            "logit: the raw logit of the class; probability: its softmax probability "
            "(the sigmoid of a single output), in [0, 1]",
            default="logit",
            choices=OUTPUTS,
        ),
        Param(
            "include_prompt",
            "bool",
            "Score the prompt and the completion as a text pair; false: the completion alone",
            default=True,
        ),
        Param(
            "max_length",
            "int",
            "Tokens the model reads at most (longer inputs are truncated)",
            default=512,
            min=1,
        ),
        DEVICE_PARAM,
        BATCH_SIZE_PARAM,
        CACHE_SIZE_PARAM,
    ),
    build=_build_reward_model,
    help=(
        "Loaded on the first scored batch, once per process. A logit has no fixed range; "
        "output = probability gives [0, 1]."
    ),
)
"""The reward model as a built-in reward: ``REWARD_MODEL(tokenizer=..., **params)``."""
