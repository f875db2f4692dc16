"""Group-based policy-gradient math for language models: RLOO (Ahmadian et al. 2024) and
GRPO (Shao et al. 2024), with the Dr. GRPO / DAPO variants of advantage scaling and loss
normalisation.

Rows are grouped prompt-major: for ``group_size`` k, rows [0, k) are k completions of
prompt 0, rows [k, 2k) of prompt 1, and so on. Per-token tensors are [B, R] over response
tokens with a right-padded ``mask`` (see ``core.algorithms.common``). All results are
float32; padding positions never influence a result, even when they hold NaN/inf.
"""

from __future__ import annotations

import torch

from core.algorithms.common import (
    bool_mask,
    kl_k3,
    masked_fill_zero,
    masked_mean,
    masked_sum,
)

LOSS_NORMALIZATIONS = ("sequence", "token")


def _grouped(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """Returns scores [B] as float32 [B // group_size, group_size], one prompt per row.

    Raises ValueError unless group_size is a positive int and B is a multiple of it.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    flat = scores.float().reshape(-1)
    batch = flat.numel()
    if batch % group_size != 0:
        raise ValueError(
            f"batch size {batch} is not a multiple of group_size {group_size}: rows must "
            f"hold group_size completions per prompt, prompt-major"
        )
    return flat.reshape(batch // group_size, group_size)


@torch.no_grad()
def rloo_advantages(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """Returns float32 [B]: A_i = r_i - mean of the other k - 1 rewards in i's group.

    Leave-one-out baseline (RLOO); needs group_size >= 2. Computed without gradient.
    """
    r = _grouped(scores, group_size)
    if group_size < 2:
        raise ValueError(f"RLOO needs group_size >= 2 (a leave-one-out baseline), got {group_size}")
    others = (r.sum(dim=1, keepdim=True) - r) / (group_size - 1)
    return (r - others).reshape(-1)


@torch.no_grad()
def constant_group_share(scores: torch.Tensor, group_size: int) -> float:
    """The share of groups whose rewards are all equal: they carry no learning signal (TRL's
    `frac_reward_zero_std`)."""
    r = _grouped(scores, group_size)
    return float((r.amax(dim=1) == r.amin(dim=1)).float().mean()) if r.shape[0] else 0.0


@torch.no_grad()
def group_advantages(
    scores: torch.Tensor, group_size: int, scale_by_std: bool = True, eps: float = 1e-4
) -> tuple[torch.Tensor, float]:
    """Returns (advantages float32 [B], frac_zero_std), computed without gradient.

    GRPO: A_i = (r_i - group mean) / (group std + eps), std unbiased within the group. With
    ``scale_by_std`` False only the group mean is removed (Dr. GRPO). ``frac_zero_std`` is the
    share of groups whose rewards are all equal; such groups carry no learning signal and get
    advantages of exactly 0 (no rounding residue from the mean). With group_size 1 every group
    is such a group.
    """
    r = _grouped(scores, group_size)
    n_groups = r.shape[0]
    mean = r.mean(dim=1, keepdim=True)
    centered = r - mean
    constant = r.amax(dim=1) == r.amin(dim=1)  # [G]: every reward in the group is equal
    if scale_by_std:
        var = (centered**2).sum(dim=1, keepdim=True) / max(group_size - 1, 1)
        centered = centered / (var.sqrt() + eps)
    zero = torch.zeros((), dtype=torch.float32, device=r.device)
    adv = torch.where(constant.unsqueeze(1), zero, centered)
    frac_zero_std = float(constant.float().mean()) if n_groups else 0.0
    return adv.reshape(-1), frac_zero_std


def grpo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    kl_coef: float,
    normalize: str = "sequence",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (loss 0-d, stats) for the GRPO objective, float32.

    Per real token: max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)) + kl_coef * k3, with
    ratio = exp(logprobs - old_logprobs), the sequence advantage A = advantages[b] [B] broadcast
    over row b's tokens, and k3 the estimate of KL(policy || reference) from ``kl_k3`` (its
    gradient flows through logprobs, pulling them towards ref_logprobs).

    ``normalize``: "sequence" takes the mean over each row's real tokens, then the mean over
    the B rows (a row with no real token contributes 0); "token" takes the sum over all real
    tokens divided by their number (0 when there is none).

    stats (detached 0-d tensors, means over real tokens): ``clipfrac`` share of tokens where the
    clipped term was active; ``approx_kl`` the k3 estimate (ratio - 1) - log ratio of the KL
    between old and new policy; ``kl`` the k3 estimate to the reference.
    """
    if normalize not in LOSS_NORMALIZATIONS:
        allowed = ", ".join(repr(n) for n in LOSS_NORMALIZATIONS)
        raise ValueError(f"unknown normalize {normalize!r}; allowed: {allowed}")
    m = bool_mask(mask)
    batch = m.shape[0]
    if advantages.numel() != batch:
        raise ValueError(
            f"advantages must hold one value per sequence ({batch}), got shape "
            f"{tuple(advantages.shape)}"
        )
    # Zeroing padding before any arithmetic keeps NaN/inf there out of values and gradients.
    logp = masked_fill_zero(logprobs, m)
    old = masked_fill_zero(old_logprobs, m)
    log_ratio = logp - old
    ratio = torch.exp(log_ratio)
    adv = masked_fill_zero(advantages.float().reshape(-1, 1).expand_as(logp), m)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    kl = kl_k3(logp, masked_fill_zero(ref_logprobs, m))  # 0 at padding: both sides are 0 there
    per_token = torch.maximum(unclipped, clipped) + kl_coef * kl
    if normalize == "sequence":
        loss = masked_mean(per_token, m, dim=1).sum() / max(batch, 1)
    else:
        loss = masked_mean(per_token, m)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), m),
            "approx_kl": masked_mean(kl_k3(old, logp), m),  # (ratio - 1) - log ratio
            "kl": masked_mean(kl, m),
        }
    return loss, stats


def rloo_loss(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns the 0-d float32 loss -(1/B) * sum_b A_b * sum_t logp_bt over real tokens.

    Sequence-level REINFORCE with the leave-one-out advantages [B] (Ahmadian et al. 2024): each
    sequence weighs the same whatever its length; a row whose mask is empty contributes 0.
    """
    m = bool_mask(mask)
    batch = m.shape[0]
    seq_logp = masked_sum(logprobs, m, dim=1)  # [B]
    return -(advantages.float().reshape(-1) * seq_logp).sum() / max(batch, 1)
