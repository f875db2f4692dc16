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
    kl_estimate,
    kl_k3,
    masked_fill_zero,
    masked_mean,
    masked_sum,
)

LOSS_NORMALIZATIONS = ("sequence", "token", "sum")


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
    scores: torch.Tensor,
    group_size: int,
    scale_by_std: bool = True,
    eps: float = 1e-4,
    scale: str | None = None,
    batch_std: float | None = None,
) -> tuple[torch.Tensor, float]:
    """Returns (advantages float32 [B], frac_zero_std), computed without gradient.

    GRPO: A_i = (r_i - group mean) / (std + eps). ``scale`` (TRL's ``scale_rewards``): "group"
    divides by the group's std (unbiased within the group), "batch" by ``batch_std`` (the std
    of every score of the batch, all processes: the caller's), "none" only removes the group
    mean (Dr. GRPO). Without ``scale``, ``scale_by_std`` picks "group" or "none".
    ``frac_zero_std`` is the share of groups whose rewards are all equal; such groups carry
    no learning signal and get advantages of exactly 0 (no rounding residue from the mean).
    With group_size 1 every group is such a group.
    """
    scale = scale or ("group" if scale_by_std else "none")
    r = _grouped(scores, group_size)
    n_groups = r.shape[0]
    mean = r.mean(dim=1, keepdim=True)
    centered = r - mean
    constant = r.amax(dim=1) == r.amin(dim=1)  # [G]: every reward in the group is equal
    if scale == "group":
        var = (centered**2).sum(dim=1, keepdim=True) / max(group_size - 1, 1)
        centered = centered / (var.sqrt() + eps)
    elif scale == "batch":
        if batch_std is None:
            batch_std = float(r.std()) if r.numel() > 1 else 0.0
        centered = centered / (batch_std + eps)
    elif scale != "none":
        raise ValueError(f"unknown scale {scale!r}; allowed: 'group', 'batch', 'none'")
    zero = torch.zeros((), dtype=torch.float32, device=r.device)
    adv = torch.where(constant.unsqueeze(1), zero, centered)
    frac_zero_std = float(constant.float().mean()) if n_groups else 0.0
    return adv.reshape(-1), frac_zero_std


def _clipped_surrogate(log_ratio, adv, low: float, high: float):
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - low, 1.0 + high)
    return torch.maximum(unclipped, clipped), clipped > unclipped


def grpo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    kl_coef: float,
    normalize: str = "sequence",
    *,
    clip_high: float | None = None,
    kl_estimator: str = "k3",
    level: str = "token",
    divisor: float | None = None,
    policy_mask: torch.Tensor | None = None,
    is_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (loss 0-d, stats) for the GRPO objective, float32.

    Per real token: max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps_high)) + kl_coef * kl,
    with ratio = exp(logprobs - old_logprobs), the sequence advantage A = advantages[b] [B]
    broadcast over row b's tokens, eps_high = ``clip_high`` (DAPO's clip-higher; default
    ``clip_range``), and kl the ``kl_estimator`` estimate of KL(policy || reference) (k3 by
    default; its gradient flows through logprobs, pulling them towards ref_logprobs).
    ``level`` "sequence" (GSPO): every token of row b carries the row's one ratio,
    exp(mean over its real tokens of the log ratio), so the clip acts per completion.
    ``policy_mask`` [B, R]: only its tokens carry the policy term (the KL term and the
    normalisation still cover every real token), as TRL's ``top_entropy_quantile`` does.
    ``is_weight`` [B, R] (detached): the truncated importance weight of tokens drawn by a
    sampler other than the policy (``truncated_is_weights``), on the policy term only, as
    TRL applies its vllm_importance_sampling_correction; None leaves the loss untouched.

    ``normalize``: "sequence" takes the mean over each row's real tokens, then the mean over
    the B rows (a row with no real token contributes 0); "token" takes the sum over all real
    tokens divided by their number (0 when there is none); "sum" divides the sum over all
    real tokens by ``divisor`` (Dr. GRPO: rows x max_new_tokens; DAPO: the tokens of the
    whole optimiser step, every process's).

    stats (detached 0-d tensors, means over real tokens): ``clipfrac`` share of tokens where the
    clipped term was active; ``approx_kl`` the k3 estimate (ratio - 1) - log ratio of the KL
    between old and new policy; ``kl`` the chosen estimate to the reference.
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
    if level == "sequence":
        log_ratio = masked_mean(log_ratio, m, dim=1).unsqueeze(1).expand_as(logp)
    elif level != "token":
        raise ValueError(f"unknown level {level!r}; allowed: 'token', 'sequence'")
    adv = masked_fill_zero(advantages.float().reshape(-1, 1).expand_as(logp), m)
    high = clip_range if clip_high is None else clip_high
    policy_term, was_clipped = _clipped_surrogate(log_ratio, adv, clip_range, high)
    if policy_mask is not None:
        policy_term = masked_fill_zero(policy_term, policy_mask)
    if is_weight is not None:
        policy_term = policy_term * is_weight
    # 0 at padding: both sides are 0 there
    kl = kl_estimate(logp, masked_fill_zero(ref_logprobs, m), kl_estimator)
    per_token = masked_fill_zero(policy_term + kl_coef * kl, m)
    loss = _normalized(per_token, m, normalize, divisor)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean(was_clipped.float(), m),
            "approx_kl": masked_mean(kl_k3(old, logp), m),  # (ratio - 1) - log ratio
            "kl": masked_mean(masked_fill_zero(kl, m), m),
        }
    return loss, stats


def _normalized(per_token, m, normalize: str, divisor: float | None) -> torch.Tensor:
    if normalize == "sequence":
        return masked_mean(per_token, m, dim=1).sum() / max(m.shape[0], 1)
    if normalize == "token":
        return masked_mean(per_token, m)
    if not divisor or divisor <= 0:
        raise ValueError(f'normalize "sum" needs a divisor > 0, got {divisor!r}')
    return masked_sum(per_token, m) / divisor


@torch.no_grad()
def high_entropy_mask(entropy: torch.Tensor, mask: torch.Tensor, share: float) -> torch.Tensor:
    """Returns the bool mask [B, R] of the real tokens whose entropy is among the highest
    ``share`` of them (Wang et al. 2025, TRL's ``top_entropy_quantile``): at or above the
    (1 - share) quantile of the real tokens' entropies. share 1 keeps every real token."""
    m = bool_mask(mask)
    if share >= 1.0 or not m.any():
        return m
    threshold = torch.quantile(entropy.float()[m], 1.0 - share)
    return m & (entropy.float() >= threshold)


def rloo_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    is_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Returns the 0-d float32 loss -(1/B) * sum_b A_b * sum_t w_bt logp_bt over real tokens.

    Sequence-level REINFORCE with the leave-one-out advantages [B] (Ahmadian et al. 2024): each
    sequence weighs the same whatever its length; a row whose mask is empty contributes 0.
    w = ``is_weight`` [B, R] (detached truncated importance weights), or 1 when None.
    """
    m = bool_mask(mask)
    batch = m.shape[0]
    if is_weight is not None:
        logprobs = masked_fill_zero(logprobs, m) * is_weight
    seq_logp = masked_sum(logprobs, m, dim=1)  # [B]
    return -(advantages.float().reshape(-1) * seq_logp).sum() / max(batch, 1)
