"""ILQL's heads on the LM's last hidden state: Q heads over the vocabulary, their Polyak-averaged
targets, and a V head."""

from __future__ import annotations

import copy

import torch
from torch import nn

# The last layer of every head starts with zero bias and weights scaled by this factor.
_LAST_LAYER_SCALE = 0.01


def _mlp(in_size: int, hidden: int, out_size: int) -> nn.Sequential:
    """Returns Linear(in, hidden) -> ReLU -> Linear(hidden, out) with a near-zero output.

    Why small outputs at the start: ``ilql_decode_logits`` adds beta * (Q - V) to the language
    model's logits, so near-zero heads sample (almost) like the base model until the heads have
    learned something; the AWAC weight exp(beta * (Q - V)) starts at ~1, so the AWAC term starts
    as the plain LM loss; and the first TD/CQL gradients are not driven by random per-token
    values spread over the whole vocabulary. The first layer keeps its default init so the
    hidden features (and their gradients) are not degenerate.
    """
    last = nn.Linear(hidden, out_size)
    with torch.no_grad():
        last.weight.mul_(_LAST_LAYER_SCALE)
        last.bias.zero_()
    return nn.Sequential(nn.Linear(in_size, hidden), nn.ReLU(), last)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, alpha: float) -> None:
    """Sets every parameter of target to alpha * source + (1 - alpha) * target, in place.

    alpha=1 copies source exactly; alpha=0 leaves target unchanged. The two modules must have
    the same parameter names and shapes. Buffers are not touched.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    src = dict(source.named_parameters())
    tgt = dict(target.named_parameters())
    if src.keys() != tgt.keys():
        raise ValueError("target and source modules have different parameters")
    for name, t in tgt.items():
        s = src[name]
        if t.shape != s.shape:
            raise ValueError(f"parameter {name!r}: shape {tuple(t.shape)} != {tuple(s.shape)}")
        if alpha == 1.0:
            t.copy_(s)  # bit-exact, unlike t + 1 * (s - t)
        elif alpha != 0.0:
            t.mul_(1.0 - alpha).add_(s.to(t.dtype), alpha=alpha)


class ILQLHeads(nn.Module):
    """Q heads (one or two), their frozen target copies and a V head on top of hidden states.

    Each head is an MLP hidden_size -> head_hidden -> out (out = vocab_size for Q, 1 for V);
    head_hidden defaults to 2 * hidden_size. The target Q heads start as deep copies of the Q
    heads, never receive gradients and only move through ``sync_target``.
    """

    def __init__(
        self,
        hidden_size: int,
        vocab_size: int,
        two_qs: bool = True,
        head_hidden: int | None = None,
    ) -> None:
        super().__init__()
        head_hidden = 2 * hidden_size if head_hidden is None else head_hidden
        self.hidden_size, self.vocab_size, self.two_qs = hidden_size, vocab_size, two_qs
        n_qs = 2 if two_qs else 1
        # Built one by one, so the two Q heads start from different random weights.
        self.q_heads = nn.ModuleList(
            _mlp(hidden_size, head_hidden, vocab_size) for _ in range(n_qs)
        )
        self.target_q_heads = nn.ModuleList(copy.deepcopy(q) for q in self.q_heads)
        self.target_q_heads.requires_grad_(False)
        self.v_head = _mlp(hidden_size, head_hidden, 1)

    def forward(
        self, hidden: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], torch.Tensor]:
        """Returns (qs, target_qs, v) for hidden [B, T, H].

        qs and target_qs are tuples (one entry per Q head) of [B, T, V]; v is [B, T]. The target
        heads run without autograd, so their outputs carry no graph back into ``hidden``.
        """
        hidden = hidden.to(self.v_head[0].weight.dtype)
        qs = tuple(q(hidden) for q in self.q_heads)
        with torch.no_grad():
            target_qs = tuple(q(hidden) for q in self.target_q_heads)
        v = self.v_head(hidden).squeeze(-1)
        return qs, target_qs, v

    def sync_target(self, alpha: float) -> None:
        """Polyak update of the target Q heads: target = alpha * q + (1 - alpha) * target."""
        for target, q in zip(self.target_q_heads, self.q_heads):
            polyak_update(target, q, alpha)
