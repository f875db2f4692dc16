"""Evaluation on held-out prompts: reward per component, KL to the reference, diversity,
BLEU / ROUGE-L / chrF against a reference column, and perplexity on reference text.

The loop calls `evaluate` before training, every `training.eval_every` steps and at the
end; `rlstudio eval RUN_ID` calls it on the starting model and the last checkpoint.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.config import RunConfig
from core.control import Control
from core.data import PromptSet, format_prompt
from core.generation.rollout import Decode, generate_rollout
from core.lm.policy import LoadedModels
from core.rewards.scores import component_means
from core.text_metrics import perplexity, split_heldout, text_metrics

REFERENCE_COLUMN = "reference"


def heldout_split(cfg: RunConfig, prompt_set: PromptSet) -> tuple[list[int], list[int]]:
    """(train, held-out) prompt indices; no held-out prompts when the set is too small."""
    n = len(prompt_set)
    if cfg.data.heldout_fraction <= 0 or n < 2:
        return list(range(n)), []
    return split_heldout(n, cfg.data.heldout_fraction, cfg.training.seed)


@torch.no_grad()
def evaluate(
    models: LoadedModels,
    cfg: RunConfig,
    prompt_set: PromptSet,
    indices: list[int],
    reward,
    control: Control | None = None,
    decode: Decode | None = None,
) -> dict[str, float]:
    """Metrics of the current policy on the given prompts, under `eval/` keys (`decode`:
    the algorithm's own sampler, without exploration)."""
    completions, totals, kls = [], [], []
    components: dict[str, list[float]] = {}
    size = cfg.training.batch_size
    for start in range(0, len(indices), size):
        idx = indices[start : start + size]
        prompts, columns = prompt_set.batch(idx)
        texts = [format_prompt(models.tokenizer, p, cfg.data.chat_template) for p in prompts]
        rollout = generate_rollout(
            models,
            texts,
            cfg.generation,
            cfg.data.max_prompt_tokens,
            control,
            decode=decode,
        )
        result = reward(prompts, rollout.completions, **rollout.reward_columns(columns))
        completions += rollout.completions
        totals += result.total
        for name, values in result.components.items():
            components.setdefault(name, []).extend(values)
        kl = (rollout.logprobs - rollout.ref_logprobs) * rollout.mask
        kls += kl.sum(1).tolist()
    metrics = {"eval/reward/mean": float(np.mean(totals)), "eval/kl": float(np.mean(kls))}
    metrics.update(component_means("eval/reward", components))
    references = list(prompt_set.columns.get(REFERENCE_COLUMN, ()))
    refs = [references[i] for i in indices] if references else None
    metrics.update(text_metrics(completions, refs))
    # Perplexity on the reference answers when the data has them, else on the prompts.
    ref_text = [r for r in refs if r] if refs else [prompt_set.prompts[i] for i in indices]
    ppl = perplexity(models.policy.lm, models.tokenizer, ref_text, batch_size=size)
    metrics["eval/perplexity"] = ppl
    return {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
