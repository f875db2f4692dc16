"""The language model as a tensor machine: logits, values and hidden states at the response
positions, each distinct prompt run once, and logprobs / entropy from logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.lm.kv_cache import cache_kwarg, cache_of
from core.parallel import sharding

# Above this many float32 elements per chunk, logits are processed in several chunks.
_CHUNK_ELEMENTS = 1 << 26


@dataclass
class ResponseOutput:
    logits: torch.Tensor  # [B, R, V] for the response tokens
    values: torch.Tensor | None  # [B, R]
    hidden: torch.Tensor | None = None  # [B, R, H] last hidden states, when asked for


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as generate() uses; a plain forward must match."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_outputs(
    lm: nn.Module,
    input_ids,
    attention_mask,
    prompt_len: int,
    v_head: nn.Module | None = None,
    want_hidden: bool = False,
    final_hidden: bool = False,
) -> ResponseOutput:
    """Logits [B, R, V] at the positions predicting the response, with values (`v_head`)
    and hidden states when asked; with `final_hidden` those hold one more position, the
    last token's own, whose state has read the whole sequence: [B, R + 1(, H)]."""
    want_hidden = want_hidden or final_hidden
    resp_len = input_ids.shape[1] - prompt_len
    out = lm(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_for(attention_mask),
        use_cache=False,
        output_hidden_states=v_head is not None or want_hidden,
        logits_to_keep=resp_len + 1,
    )
    logits = out.logits[:, :-1]
    values = hidden = None
    if v_head is not None or want_hidden:
        hidden = out.hidden_states[-1][:, prompt_len - 1 : None if final_hidden else -1]
    if v_head is not None:
        values = v_head(hidden.to(v_head.weight.dtype)).squeeze(-1)
    return ResponseOutput(logits=logits, values=values, hidden=hidden if want_hidden else None)


def distinct_rows(ids: torch.Tensor, mask: torch.Tensor):
    """Each distinct (ids, mask) row once (a GRPO / RLOO group repeats its prompt):
    (distinct ids, distinct mask, owner), `owner[i]` the distinct row of row i."""
    distinct, owner = torch.unique(
        torch.cat([ids, mask.to(ids.dtype)], 1), dim=0, return_inverse=True
    )
    distinct_ids, distinct_mask = distinct.split(ids.shape[1], 1)
    return distinct_ids, distinct_mask, owner


def cache_fits(cache) -> bool:
    """A cache whose rows can be selected and copied (transformers' Cache classes)."""
    return hasattr(cache, "batch_select_indices")


def response_logits_shared(
    lm, ids, attention, prompt_len: int, want_hidden: bool = False, final_hidden: bool = False
):
    """`models.response_outputs` (logits, and last hidden states when asked, at the
    positions predicting the response) with each distinct prompt run once: a GRPO / RLOO
    batch holds every prompt group_size times, so the prompt's cache is computed once and
    copied to its rows. Returns (logits [B, R, V], hidden [B, R, H] or None; with
    `final_hidden`, [B, R + 1, H]: the last token's own position too)."""
    want_hidden = want_hidden or final_hidden
    prompt, prompt_mask, owner = distinct_rows(ids[:, :prompt_len], attention[:, :prompt_len])
    # Sharded (FSDP): how many forwards this takes depends on this rank's prompts, and
    # every rank must make the same calls.
    if prompt.shape[0] == ids.shape[0] or ids.shape[1] - prompt_len < 2 or sharding.active(lm):
        out = response_outputs(lm, ids, attention, prompt_len, None, want_hidden, final_hidden)
        return out.logits, out.hidden
    head = lm(
        input_ids=prompt,
        attention_mask=prompt_mask,
        position_ids=position_ids_for(prompt_mask),
        use_cache=True,
        logits_to_keep=1,
        output_hidden_states=want_hidden,
    )
    cache = cache_of(head)
    if not cache_fits(cache):
        out = response_outputs(lm, ids, attention, prompt_len, None, want_hidden, final_hidden)
        return out.logits, out.hidden
    cache.batch_select_indices(owner)
    # The last response token predicts nothing we score: feed the others only (unless its
    # own hidden state is asked for).
    end = None if final_hidden else -1
    tail = lm(
        input_ids=ids[:, prompt_len:end],
        attention_mask=attention[:, :end],
        position_ids=position_ids_for(attention)[:, prompt_len:end],
        **cache_kwarg(lm, cache),
        use_cache=True,
        output_hidden_states=want_hidden,
    )
    scored = ids.shape[1] - prompt_len - 1  # the tail's positions that predict a token
    logits = torch.cat([head.logits[owner, -1:], tail.logits[:, :scored]], 1)
    hidden = None
    if want_hidden:
        last = head.hidden_states[-1][owner, -1:]
        hidden = torch.cat([last, tail.hidden_states[-1]], 1)
    return logits, hidden


def _row_chunks(flat: torch.Tensor, chunk_size: int | None) -> tuple[torch.Tensor, ...]:
    """Returns [N, V] split along N into chunks holding at most chunk_size rows."""
    n, v = flat.shape
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(v, 1))
    return torch.split(flat, max(1, min(chunk_size, max(n, 1))), dim=0)


def logprobs_from_logits(
    logits: torch.Tensor, tokens: torch.Tensor, chunk_size: int | None = None
) -> torch.Tensor:
    """Returns float32 [B, R]: log-softmax of logits [B, R, V] at the ids in tokens [B, R].

    Works on chunks of at most ``chunk_size`` token positions (default: sized so one chunk's
    float32 copy is at most 2**26 elements), so the only [B, R, V]-sized float32 memory is the
    chunks' log-softmax outputs (kept by autograd when grads are needed).
    """
    v = logits.shape[-1]
    flat = logits.reshape(-1, v)
    ids = tokens.reshape(-1, 1).long()
    out = []
    start = 0
    for chunk in _row_chunks(flat, chunk_size):
        stop = start + chunk.shape[0]
        logp = F.log_softmax(chunk, dim=-1, dtype=torch.float32)
        out.append(logp.gather(-1, ids[start:stop]).squeeze(-1))
        start = stop
    if not out:
        return torch.zeros(tokens.shape, dtype=torch.float32, device=logits.device)
    return torch.cat(out).reshape(tokens.shape)


def entropy_from_logits(logits: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Returns float32 [B, R]: entropy of the softmax distribution of logits [B, R, V].

    Chunked over token positions like ``logprobs_from_logits``.
    """
    v = logits.shape[-1]
    flat = logits.reshape(-1, v)
    out = []
    for chunk in _row_chunks(flat, chunk_size):
        logp = F.log_softmax(chunk, dim=-1, dtype=torch.float32)
        out.append(-(logp.exp() * logp).sum(-1))
    if not out:
        return torch.zeros(logits.shape[:-1], dtype=torch.float32, device=logits.device)
    return torch.cat(out).reshape(logits.shape[:-1])


# --- KL estimators (Schulman, "Approximating KL Divergence", 2020) --------------------------
# Each takes per-token log-probs of the sampled tokens under the policy (logp) and the
# reference model (ref_logp) and estimates KL(policy || reference) per token.
