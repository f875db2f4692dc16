"""Sampling from an ILQL policy: the LM's logits shifted by beta * (Q - V) at every token.

generate() cannot feed hidden states to a logits processor, so this is a small
sampling loop of our own over the KV cache, with the same stopping rules.
"""

from __future__ import annotations

import torch

from core.algorithms.ilql.losses import ilql_decode_logits
from core.config import GenerationConfig, IlqlConfig
from core.control import Control, Stopped
from core.generation.sampler import draw, filter_logits
from core.lm.device import autocast
from core.lm.forward import position_ids_for
from core.lm.kv_cache import cache_kwarg, cache_of


@torch.no_grad()
def ilql_generate(
    models,
    heads,
    input_ids,
    attention_mask,
    gen: GenerationConfig,
    ilql: IlqlConfig,
    end_ids: list[int],
    control: Control | None = None,
    explore: bool = True,
) -> torch.Tensor:
    """Prompt + sampled response ids [B, P + R]; rows that ended are padded after the end.

    explore=False samples the adjusted distribution as it is (Boltzmann); with
    explore=True and exploration 'epsilon', each token is replaced by a uniform one
    with probability epsilon.
    """
    lm, pad = models.policy.lm, models.tokenizer.pad_token_id
    ends = torch.tensor(end_ids, device=input_ids.device)
    ids, attn = input_ids, attention_mask
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    past, step_ids, positions = None, ids, position_ids_for(attn)
    for _ in range(gen.max_new_tokens):
        if control is not None:
            control.wait_while_paused()
            if control.stopped:
                raise Stopped
        with autocast(models.device, models.dtype):
            out = lm(
                input_ids=step_ids,
                attention_mask=attn,
                position_ids=positions,
                **cache_kwarg(lm, past),
                use_cache=True,
                output_hidden_states=True,
            )
            _qs, target_qs, v = heads(out.hidden_states[-1][:, -1:])
        past = cache_of(out)
        logits = ilql_decode_logits(out.logits[:, -1:], target_qs, v, ilql.beta)[:, 0]
        logits = filter_logits(logits / gen.temperature, gen.top_k, gen.top_p)
        token = draw(torch.softmax(logits, -1))
        if explore and ilql.exploration == "epsilon" and ilql.epsilon > 0:
            uniform = torch.randint(0, logits.shape[-1], token.shape, device=token.device)
            swap = torch.rand(token.shape, device=token.device) < ilql.epsilon
            token = torch.where(swap, uniform, token)
        token = torch.where(done, torch.full_like(token, pad), token)
        done |= torch.isin(token, ends)
        ids = torch.cat([ids, token[:, None]], dim=1)
        attn = torch.cat([attn, torch.ones_like(token[:, None])], dim=1)
        step_ids, positions = token[:, None], positions[:, -1:] + 1
        if bool(done.all()):
            break
    return ids
