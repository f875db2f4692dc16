"""Rollouts: batched sampling with the KV cache, then one no-grad pass each through the
policy and the reference for logprobs, values and entropy."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from transformers import StoppingCriteria

from core.config import GenerationConfig
from core.control import Control, Stopped
from core.generation.sampler import sample
from core.lm.device import autocast
from core.lm.forward import (
    ResponseOutput,
    entropy_from_logits,
    logprobs_from_logits,
    response_logits_shared,
)
from core.lm.packed_linear import packed_linears
from core.lm.policy import LoadedModels
from core.lm.sampling_copy import SamplingCopy
from core.parallel import sharding

# (models, prompt ids, attention mask, gen, end ids, control) -> prompt + sampled ids
Decode = Callable[..., torch.Tensor]


@dataclass
class Rollout:
    query_response: torch.Tensor  # [B, T] left-padded prompt then response
    attention_mask: torch.Tensor  # [B, T]
    prompt_len: int  # P: responses occupy columns P..T-1
    mask: torch.Tensor  # [B, R] float, 1 up to and including the end token
    # [B, R] policy at sampling time; None until the update fills them in when the
    # algorithm takes them from its own forward (one pass: see score_policy below)
    logprobs: torch.Tensor | None
    ref_logprobs: torch.Tensor  # [B, R]
    values: torch.Tensor | None  # [B, R]
    entropy: torch.Tensor | None  # [B, R]
    ended: torch.Tensor  # [B] bool: EOS or a stop string, not cut by max_new_tokens
    completions: list[str]
    # [B] the value head's V of the state after each row's last real token (None without a
    # value head): what a cut completion's return bootstraps from (PPO's GAE)
    final_values: torch.Tensor | None = None
    # [B, R] the sampler's own logprobs when it was not the policy (a bfloat16 copy:
    # generation.sampling_dtype); `logprobs` are then the policy's, for the importance weight
    sampler_logprobs: torch.Tensor | None = None

    @property
    def response(self) -> torch.Tensor:
        return self.query_response[:, self.prompt_len :]

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(-1)

    def reward_columns(self, columns: dict[str, list]) -> dict[str, list]:
        """The prompt set's columns for the reward, plus ``finished``: per completion,
        whether it ended by itself (EOS or a stop string) rather than at max_new_tokens,
        and ``completion_ids``: its token ids up to and including its end (TRL's name)."""
        ids = [r[m.bool()].tolist() for r, m in zip(self.response, self.mask)]
        return {**columns, "finished": self.ended.tolist(), "completion_ids": ids}


class GenerationGate(StoppingCriteria):
    """Holds generation while paused and ends it on stop, between two tokens."""

    def __init__(self, control: Control) -> None:
        self.control = control

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs
    ) -> torch.BoolTensor:
        self.control.wait_while_paused()
        done = self.control.stopped
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def response_mask(response: torch.Tensor, end_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """1 up to and including the first end token, 0 after it; plus whether one was seen."""
    is_end = torch.isin(response, torch.tensor(end_ids, device=response.device))
    ends_before = torch.cumsum(is_end.long(), dim=1) - is_end.long()  # ends strictly before t
    return (ends_before == 0).float(), is_end.any(dim=1)


def _cut_at_stop_strings(response, mask, ended, tokenizer, stops):
    """End each completion at the token that completes its first stop string.

    generate() stops a row there but, when that row finishes last, no end token
    follows it, so the mask is cut here from the text itself.
    """
    mask, ended = mask.clone(), ended.clone()
    for row in range(response.shape[0]):
        ids = response[row][mask[row].bool()].tolist()
        pieces = [tokenizer.decode([t]) for t in ids]
        text = "".join(pieces)
        hits = [text.find(s) + len(s) for s in stops if s and s in text]
        if not hits:
            continue
        end_char, length = min(hits), 0
        for j, piece in enumerate(pieces):
            length += len(piece)
            if length >= end_char:
                mask[row, j + 1 :] = 0
                ended[row] = True
                break
    return mask, ended


def _end_ids(tokenizer, model) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else [ids] if ids is not None else []
    ids += [tokenizer.eos_token_id, tokenizer.pad_token_id]
    return sorted({i for i in ids if i is not None})


@torch.no_grad()
def generate_rollout(
    models: LoadedModels,
    prompts: list[str],
    gen: GenerationConfig,
    max_prompt_tokens: int,
    control: Control | None = None,
    chunk_size: int | None = None,
    decode: Decode | None = None,
    score_policy: bool = True,
    sampling: SamplingCopy | None = None,
) -> Rollout:
    """Sample one completion per prompt and score it under the policy and the reference.

    `decode` is an algorithm's own sampler (`Algorithm.decoder`: Q-learning samples from
    its Q-adjusted distribution); else `gen.sampler` chooses: "loop", our loop
    (`core.generation.sampler`, which falls back to generate() for a model whose cache it
    cannot handle), or "generate", transformers' generate(). `score_policy=False` skips
    the policy's no-grad forward (logprobs and entropy stay None) for an algorithm that
    makes exactly one gradient pass: its own forward, before the weights move, gives the
    same numbers. `sampling`: a low-precision copy of the policy to sample from (and
    whose logprobs of the samples become `sampler_logprobs`); the policy then always scores
    the tokens, one-pass algorithms too, as the update needs its own "old" logprobs."""
    tokenizer, lm = models.tokenizer, models.policy.lm
    enc = tokenizer(
        prompts,
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_prompt_tokens,
        add_special_tokens=False,
    ).to(models.device)
    end_ids = _end_ids(tokenizer, lm)
    was_training = lm.training
    lm.eval()  # no dropout while sampling or scoring
    try:
        drawer = (lm, models.dtype) if sampling is None else (sampling.lm, sampling.dtype)
        with packed_linears(drawer[0], len(prompts), drawer[1]):
            out = _sample(models, drawer[0], enc, gen, end_ids, control, decode)
        if control is not None and control.stopped:
            raise Stopped
        prompt_len = enc["input_ids"].shape[1]
        response = out[:, prompt_len:]
        mask, ended = response_mask(response, end_ids)
        if gen.stop:
            mask, ended = _cut_at_stop_strings(response, mask, ended, tokenizer, gen.stop)
        attention = torch.cat([enc["attention_mask"], mask.long()], dim=1)
        logprobs, ref_logprobs, values, entropy, final_values = _score(
            models,
            out,
            attention,
            prompt_len,
            gen.temperature,
            chunk_size or len(prompts),
            score_policy or models.policy.v_head is not None or sampling is not None,
        )
        sampler_logprobs = _sampler_logprobs(
            sampling, out, attention, prompt_len, gen.temperature, chunk_size or len(prompts)
        )
    finally:
        lm.train(was_training)
    completions = [
        tokenizer.decode(r[m.bool()], skip_special_tokens=True) for r, m in zip(response, mask)
    ]
    return Rollout(
        out,
        attention,
        prompt_len,
        mask,
        logprobs,
        ref_logprobs,
        values,
        entropy,
        ended,
        completions,
        final_values=final_values,
        sampler_logprobs=sampler_logprobs,
    )


def _sample(models: LoadedModels, lm, enc, gen, end_ids, control, decode):
    """Prompt + sampled ids from `lm` (the policy's, or its sampling copy): the algorithm's
    decoder, our loop, or generate() (see generate_rollout)."""
    tokenizer, device = models.tokenizer, models.device
    if decode is not None:
        return decode(models, enc["input_ids"], enc["attention_mask"], gen, end_ids, control)
    # A sampling copy computes in its own precision: autocast is the policy's.
    with autocast(device, models.dtype) if lm is models.policy.lm else nullcontext():
        # A sharded model's forward is a collective: every rank must take as many
        # as the others, which generate() sees to (synced_gpus) and our loop does not.
        if gen.sampler == "loop" and not sharding.active(lm):
            out = sample(
                lm,
                enc["input_ids"],
                enc["attention_mask"],
                gen,
                end_ids,
                tokenizer.pad_token_id,
                control,
                tokenizer,
            )
            if out is not None:
                return out
        from transformers import GenerationConfig as HFGenerationConfig
        from transformers import StoppingCriteriaList

        hf_gen = HFGenerationConfig(
            do_sample=True,
            temperature=gen.temperature,
            top_k=gen.top_k or None,
            top_p=gen.top_p,
            max_new_tokens=gen.max_new_tokens,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=end_ids,
            stop_strings=list(gen.stop) or None,
        )
        return lm.generate(
            **enc,
            generation_config=hf_gen,
            stopping_criteria=StoppingCriteriaList([GenerationGate(control)] if control else []),
            tokenizer=tokenizer if gen.stop else None,
        )


def _reference_logits(models: LoadedModels, ids, attention, prompt_len):
    with torch.no_grad(), models.reference.model() as lm:
        return response_logits_shared(lm, ids, attention, prompt_len)[0]


def _policy_outputs(models: LoadedModels, ids, attention, prompt_len):
    """(logits and values [B, R], the values after each row's last real token [B] or None)."""
    v_head = models.policy.v_head
    logits, hidden = response_logits_shared(
        models.policy.lm, ids, attention, prompt_len, final_hidden=v_head is not None
    )
    if v_head is None:
        return ResponseOutput(logits=logits, values=None), None
    values = v_head(hidden.to(v_head.weight.dtype)).squeeze(-1)  # [B, R + 1]
    # values[:, t] reads the tokens before response token t (the state it is sampled in), so
    # V after the last real token is the next column: that token's own position.
    lengths = attention[:, prompt_len:].sum(1, keepdim=True)
    return ResponseOutput(logits=logits, values=values[:, :-1]), values.gather(1, lengths)[:, 0]


def _sampler_logprobs(sampling, ids, attention, prompt_len, temperature, chunk_size):
    """The sampling copy's logprobs of its samples (one no-grad forward, in its precision,
    on the weights it sampled with); None without a copy."""
    if sampling is None:
        return None
    parts = []
    with packed_linears(sampling.lm, chunk_size, sampling.dtype):
        for start in range(0, ids.shape[0], chunk_size):
            rows = slice(start, start + chunk_size)
            logits = response_logits_shared(sampling.lm, ids[rows], attention[rows], prompt_len)[0]
            tokens = ids[rows, prompt_len:]
            parts.append(logprobs_from_logits(logits.float() / temperature, tokens))
    return torch.cat(parts)


def _score(models: LoadedModels, ids, attention, prompt_len, temperature, chunk_size, policy=True):
    """Policy and reference logprobs of the sampled tokens, in chunks to bound memory."""
    parts: dict[str, list] = {"lp": [], "ref": [], "v": [], "ent": [], "final": []}
    for start in range(0, ids.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        tokens = ids[rows, prompt_len:]
        with autocast(models.device, models.dtype):
            ref_logits = _reference_logits(models, ids[rows], attention[rows], prompt_len)
            out, final = (
                _policy_outputs(models, ids[rows], attention[rows], prompt_len)
                if policy
                else (None, None)
            )
        parts["ref"].append(logprobs_from_logits(ref_logits.float() / temperature, tokens))
        if out is not None:
            logits = out.logits.float() / temperature
            parts["lp"].append(logprobs_from_logits(logits, tokens))
            parts["ent"].append(entropy_from_logits(logits))
            if out.values is not None:
                parts["v"].append(out.values.float())
                parts["final"].append(final.float())
            del logits
        del out, ref_logits
    values = torch.cat(parts["v"]) if parts["v"] else None
    logprobs = torch.cat(parts["lp"]) if parts["lp"] else None
    entropy = torch.cat(parts["ent"]) if parts["ent"] else None
    final = torch.cat(parts["final"]) if parts["final"] else None
    return logprobs, torch.cat(parts["ref"]), values, entropy, final
