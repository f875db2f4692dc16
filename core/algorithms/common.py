"""Tensor math shared by the RL algorithms for language models.

Conventions:
- Per-token tensors are [B, R] over response tokens.
- ``mask`` is a bool or float tensor [B, R]: 1 for real response tokens (up to and including
  EOS), 0 for padding. Padding positions never influence a result, even when they hold NaN/inf
  (masking uses ``torch.where``, not multiplication).
- Inputs may be float32 or bfloat16 on any device; all math is done in float32 and every
  returned tensor is float32.
"""

from __future__ import annotations

import math

import torch


def bool_mask(mask: torch.Tensor) -> torch.Tensor:
    """Returns the mask as a bool tensor (nonzero = real token), same shape."""
    return mask if mask.dtype == torch.bool else mask != 0


def masked_fill_zero(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Returns x as float32 (same shape) with padding positions set to 0 (gradient 0 there too)."""
    zero = torch.zeros((), dtype=torch.float32, device=x.device)
    return torch.where(bool_mask(mask), x.float(), zero)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Returns the float32 sum of x over real tokens: 0-d if dim is None, else reduced along dim."""
    xm = masked_fill_zero(x, mask)
    return xm.sum() if dim is None else xm.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Returns the float32 mean of x over real tokens (0-d or reduced along dim); 0 where none."""
    m = bool_mask(mask)
    count = m.sum() if dim is None else m.sum(dim=dim)
    return masked_sum(x, m, dim) / count.float().clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Returns the 0-d float32 variance of x over all real tokens.

    With ``unbiased`` the sum of squares is divided by n - 1; with fewer than two real
    tokens the correction is skipped (the result is 0 rather than NaN).
    """
    m = bool_mask(mask)
    xm = masked_fill_zero(x, m)
    mean = masked_mean(xm, m)
    sq = masked_sum((xm - mean) ** 2, m)
    n = m.sum().float()
    denom = (n - 1.0).clamp_min(1.0) if unbiased else n.clamp_min(1.0)
    return sq / denom


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Returns x [B, R] scaled to unit (unbiased) variance over real tokens, float32, 0 at padding.

    With ``shift_mean`` the result also has mean 0; without it the original mean is kept.
    """
    m = bool_mask(mask)
    xm = masked_fill_zero(x, m)
    mean = masked_mean(xm, m)
    var = masked_var(xm, m, unbiased=True)
    out = (xm - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return masked_fill_zero(out, m)


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Returns float32 per-token k1 = logp - ref_logp (unbiased, can be negative), same shape."""
    return logp.float() - ref_logp.float()


def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Returns float32 per-token k2 = 0.5 * (logp - ref_logp)**2 (biased, >= 0), same shape."""
    return 0.5 * (logp.float() - ref_logp.float()) ** 2


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Returns float32 per-token k3 = exp(d) - d - 1 with d = ref_logp - logp (unbiased, >= 0)."""
    d = ref_logp.float() - logp.float()
    return torch.expm1(d) - d  # expm1 keeps precision when d is near 0


_KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Returns the float32 per-token KL estimate named by estimator ("k1" | "k2" | "k3")."""
    try:
        fn = _KL_ESTIMATORS[estimator]
    except KeyError:
        allowed = ", ".join(repr(k) for k in _KL_ESTIMATORS)
        raise ValueError(f"unknown KL estimator {estimator!r}; allowed: {allowed}") from None
    return fn(logp, ref_logp)


# --- Sampling from another precision (generation.sampling_dtype) ----------------------------


@torch.no_grad()
def truncated_is_weights(
    logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, cap: float
) -> torch.Tensor:
    """Returns float32 [B, R] w = min(exp(logp - sampler_logp), cap), without gradient, 1 at
    padding: the truncated importance weight (Yao et al. 2025, TRL's
    vllm_importance_sampling_cap) that corrects a loss for tokens drawn by a sampler
    (`sampler_logp`: a bfloat16 copy) other than the policy that scores them (`logp`)."""
    ratio = torch.exp(masked_fill_zero(logp, mask) - masked_fill_zero(sampler_logp, mask))
    return ratio.clamp(max=cap)


@torch.no_grad()
def sampler_mismatch(
    logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, cap: float
) -> dict[str, float]:
    """How far the sampler strays from the policy, over real tokens: ``kl_sampler_trainer``
    the k1 estimate mean(sampler_logp - logp) of KL(sampler || policy) (the tokens are the
    sampler's draws), ``is_weight_mean`` the mean truncated weight, ``is_clipped_frac`` the
    share of tokens whose ratio passed the cap."""
    m = bool_mask(mask)
    ratio = torch.exp(masked_fill_zero(logp, m) - masked_fill_zero(sampler_logp, m))
    return {
        "sampling/kl_sampler_trainer": float(masked_mean(kl_k1(sampler_logp, logp), m)),
        "sampling/is_weight_mean": float(masked_mean(ratio.clamp(max=cap), m)),
        "sampling/is_clipped_frac": float(masked_mean((ratio > cap).float(), m)),
    }


# --- KL coefficient controllers --------------------------------------------------------------


class FixedKLController:
    """A KL penalty coefficient that never changes."""

    def __init__(self, coef: float):
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Returns the (unchanged) coefficient; the arguments are ignored."""
        return self.value

    def state_dict(self) -> dict:
        """Returns {"value": coef}."""
        return {"value": self.value}

    def load_state_dict(self, d: dict) -> None:
        """Restores the coefficient from a state_dict."""
        self.value = float(d["value"])


class AdaptiveKLController:
    """KL coefficient steered towards a target KL (Ziegler et al. 2019, eq. 2).

    update: error = clip(current_kl / target - 1, -0.2, 0.2);
    coef <- coef * (1 + error * n_steps / horizon).
    """

    def __init__(self, init_coef: float, target: float, horizon: float):
        if target <= 0:
            raise ValueError(f"target KL must be > 0, got {target}")
        if horizon <= 0:
            raise ValueError(f"horizon must be > 0, got {horizon}")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Returns the new coefficient after observing current_kl over n_steps samples."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict:
        """Returns {"value": coef}; target and horizon come from the constructor."""
        return {"value": self.value}

    def load_state_dict(self, d: dict) -> None:
        """Restores the coefficient from a state_dict."""
        self.value = float(d["value"])


# --- Diagnostics and reward scaling ----------------------------------------------------------


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """Returns the float 1 - Var[returns - values] / Var[returns]; NaN if Var[returns] == 0."""
    m = bool_mask(mask)
    ret = masked_fill_zero(returns, m)
    var_ret = masked_var(ret, m, unbiased=False)
    var_res = masked_var(ret - masked_fill_zero(values, m), m, unbiased=False)
    var_ret_f = float(var_ret)
    if var_ret_f == 0.0:
        return math.nan
    return 1.0 - float(var_res) / var_ret_f


def clip_scores(scores: torch.Tensor, clip: float | None) -> torch.Tensor:
    """Returns float32 scores clamped to [-clip, clip] (same shape); unchanged when clip is None."""
    if clip is None:
        return scores.float()
    if clip <= 0:
        raise ValueError(f"clip must be > 0 or None, got {clip}")
    return scores.float().clamp(-clip, clip)


class RunningMoments:
    """Running mean and (unbiased) std of all values seen, merged batch by batch.

    Uses the parallel form of Welford's algorithm (Chan et al.), in float64.
    Before two values have been seen ``std`` is 1.0, so dividing by it is a no-op.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean

    @property
    def var(self) -> float:
        """Returns the unbiased running variance (1.0 before two values were seen)."""
        return self._m2 / (self.count - 1) if self.count > 1 else 1.0

    @property
    def std(self) -> float:
        """Returns the unbiased running standard deviation (1.0 before two values were seen)."""
        return math.sqrt(self.var)

    def update(self, x: torch.Tensor) -> tuple[float, float]:
        """Folds all of x in; returns (batch_mean, batch_std), std unbiased (0.0 if n == 1)."""
        xs = x.detach().reshape(-1).double()
        n = xs.numel()
        if n == 0:
            raise ValueError("RunningMoments.update needs at least one value")
        b_mean = float(xs.mean())
        b_m2 = float(((xs - b_mean) ** 2).sum())
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self._m2 += b_m2 + delta * delta * self.count * n / total
        self.count = total
        b_std = math.sqrt(b_m2 / (n - 1)) if n > 1 else 0.0
        return b_mean, b_std

    def state_dict(self) -> dict:
        """Returns {"count", "mean", "m2"}."""
        return {"count": self.count, "mean": self.mean, "m2": self._m2}

    def load_state_dict(self, d: dict) -> None:
        """Restores the running moments from a state_dict."""
        self.count = int(d["count"])
        self.mean = float(d["mean"])
        self._m2 = float(d["m2"])
