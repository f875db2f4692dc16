"""The doctor's rules: one pure function per kind of finding, over the recent metrics
(`History`), the `[doctor]` thresholds and the run's facts. Each returns a `Verdict` when
the figures show the problem, else None; the doctor turns verdicts into findings."""

from __future__ import annotations

import math
from collections.abc import Callable

from core.config import DoctorConfig
from core.doctor.findings import LENGTH_REWARDS, History, RunFacts, Verdict
from core.doctor.stats import correlation, finite, median, trend

REWARD, REWARD_STD = "reward/mean", "reward/std"
ZERO_STD = "objective/frac_reward_zero_std"
KL, KL_COEF = "objective/kl", "objective/kl_coef"
ENTROPY = "objective/entropy"
ENDED, LENGTH, DISTINCT = "response/ended_frac", "response/length_mean", "response/distinct_2"
EXPLAINED_VARIANCE = "value/explained_variance"
GRAD_NORM, CLIPFRAC = "policy/grad_norm", "policy/clipfrac"
SKIPPED = "loss/skipped_nonfinite"
# Figures that are never NaN in a healthy step (a skipped update leaves its loss NaN: that is
# `instability`'s, by the skipped count)
WATCHED = (REWARD, KL, ENTROPY, GRAD_NORM, "loss/value")
CLEAR_TREND = 2.0  # a slope this many standard errors from flat is no accident

Rule = Callable[[History, DoctorConfig, RunFacts], "Verdict | None"]


def _full(h: History, key: str, n: int) -> list[float] | None:
    """The key's last n values when all n are there and finite."""
    xs = finite(h.last(key, n))
    return xs if len(xs) == n else None


def no_learning_signal(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    n = t.window
    shares = _full(h, ZERO_STD, n)
    if shares is not None and median(shares) >= t.zero_std_frac:
        return Verdict(
            "warning",
            {ZERO_STD: median(shares), "steps": n},
            f"In {median(shares):.0%} of the groups every completion got the same reward, so "
            "their advantages are zero and they teach nothing (the loss sits near zero).",
            "Give partial credit in the reward, sample more completions per prompt "
            "(algorithm.group_size), raise generation.temperature, or use easier prompts.",
        )
    spread, mean = _full(h, REWARD_STD, n), _full(h, REWARD, n)
    if spread is None or mean is None:
        return None
    if all(s <= 1e-6 * max(1.0, abs(m)) for s, m in zip(spread, mean)):
        return Verdict(
            "warning",
            {REWARD_STD: max(spread), REWARD: mean[-1], "steps": n},
            f"Every completion of the batch got the same reward ({mean[-1]:.4g}) for {n} steps: "
            "with no spread there is nothing to learn from.",
            "Check that the reward can tell completions apart (it may return a constant), "
            "or raise generation.temperature if the samples are all alike.",
        )
    return None


def kl_runaway(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    kl = finite(h.last(KL, 6))
    if not kl:
        return None
    now, target = kl[-1], f.kl_target
    growth = 0.0
    if len(kl) == 6 and median(kl[:3]) > 0:
        growth = median(kl[3:]) / median(kl[:3])
    far = now > t.kl_factor * target
    fast = growth >= t.kl_growth and median(kl[3:]) > target
    if not (far or fast):
        return None
    severity = "critical" if now > t.kl_critical_factor * target else "warning"
    why = (
        f"{now / target:.1f} times algorithm.kl_target ({target:g})"
        if far
        else f"{growth:.1f} times what it was three steps before"
    )
    return Verdict(
        severity,
        {KL: now, "kl_target": target, "kl_growth": growth, KL_COEF: h.now(KL_COEF) or 0.0},
        f"The policy is drifting away from the reference model: KL is {now:.3g} nats, {why}. "
        "Past this point the text tends to degenerate while the reward may still climb.",
        "Lower training.learning_rate, raise algorithm.kl_coef, or lower "
        "training.max_grad_norm; resume from an earlier checkpoint if the samples look wrong.",
    )


def kl_controller_saturated(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    if not f.adaptive_kl:
        return None
    kl = _full(h, KL, t.window)
    if kl is None or min(kl) <= 1.2 * f.kl_target:
        return None
    coef_start, coef_now = h.start(KL_COEF), h.now(KL_COEF)
    return Verdict(
        "warning",
        {
            KL: median(kl),
            "kl_target": f.kl_target,
            KL_COEF: coef_now or 0.0,
            "kl_coef_start": coef_start or 0.0,
        },
        f"KL has stayed above 1.2 x algorithm.kl_target for {t.window} steps, where the "
        "adaptive controller's correction is at its cap: with algorithm.kl_horizon "
        f"{f.kl_horizon} it moved kl_coef only from {coef_start or 0:.4g} to {coef_now or 0:.4g}, "
        "too slowly to pull KL back.",
        "Lower algorithm.kl_horizon (a faster controller), raise algorithm.kl_coef, or lower "
        "training.learning_rate.",
    )


def entropy_collapse(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    n = min(3, t.window)
    start, recent = h.start(ENTROPY), _full(h, ENTROPY, n)
    if start and start > 0 and recent is not None and median(recent) < t.entropy_drop * start:
        now = median(recent)
        return Verdict(
            "critical" if now < 1e-3 * start else "warning",
            {ENTROPY: now, "entropy_start": start},
            f"The policy's entropy fell from {start:.3g} to {now:.3g} nats per token: it samples "
            "nearly the same tokens every time, explores nothing new and can only repeat itself.",
            "Lower training.learning_rate, raise algorithm.kl_coef (the reference keeps it "
            "diverse), or raise generation.temperature.",
        )
    d_start, d_recent = h.start(DISTINCT), _full(h, DISTINCT, n)
    if d_start and d_start > 0 and d_recent is not None:
        now = median(d_recent)
        if now < t.distinct_drop * d_start:
            return Verdict(
                "warning",
                {DISTINCT: now, "distinct_2_start": d_start},
                f"The completions are growing alike: their distinct word pairs fell from "
                f"{d_start:.0%} to {now:.0%} of all pairs.",
                "Raise algorithm.kl_coef or generation.temperature, or lower "
                "training.learning_rate.",
            )
    return None


def truncation(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    ended = _full(h, ENDED, t.window)
    if ended is None:
        return None
    cut = 1.0 - median(ended)
    if cut < t.truncated_frac:
        return None
    evidence = {"truncated_frac": cut, "max_new_tokens": float(f.max_new_tokens)}
    evidence[LENGTH] = h.now(LENGTH) or 0.0
    suggestion = (
        "Raise generation.max_new_tokens, add a stop string (generation.stop), or penalise "
        "completions that do not end (algorithm.missing_eos_penalty)."
    )
    if (h.highest(ENDED) or 0.0) <= 0.0:  # the model has never ended one by itself
        return Verdict(
            "info",
            evidence,
            "No completion has ended by itself: every one runs to generation.max_new_tokens "
            f"({f.max_new_tokens}). Expected of a model that continues text rather than "
            "answering; a problem if the answers should end.",
            suggestion,
        )
    return Verdict(
        "warning",
        evidence,
        f"{cut:.0%} of the completions are cut at generation.max_new_tokens "
        f"({f.max_new_tokens}) before they end: the reward scores unfinished text, and the "
        "policy may learn that longer is better.",
        suggestion,
    )


def reward_hacking(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    n = 2 * t.window
    reward = _full(h, REWARD, n)
    if reward is None or trend(reward)[1] < CLEAR_TREND:
        return None
    kl, distinct, entropy = _full(h, KL, n), _full(h, DISTINCT, n), _full(h, ENTROPY, n)
    steep = kl is not None and (
        kl[-1] > t.kl_factor * f.kl_target
        or (median(kl[:3]) > 0 and kl[-1] >= t.kl_growth * median(kl[:3]))
    )
    narrowing = any(_falling(xs) for xs in (distinct, entropy))
    if steep and narrowing:
        return Verdict(
            "warning",
            {REWARD: reward[-1], "reward_start": reward[0], KL: kl[-1], "kl_start": kl[0]},
            f"The reward rose ({reward[0]:.3g} to {reward[-1]:.3g}) while KL climbed steeply "
            f"({kl[0]:.3g} to {kl[-1]:.3g}) and the samples grew less varied: the policy may "
            "be exploiting the reward rather than getting better. Read the samples.",
            "Raise algorithm.kl_coef, lower training.learning_rate, or make the reward harder "
            "to game; resume from a checkpoint before the rise if the text degenerated.",
        )
    length = _full(h, LENGTH, n)
    if length is None or any(k in LENGTH_REWARDS for k in f.reward_kinds):
        return None
    r = correlation(reward, length)
    if r >= t.length_corr and trend(length)[1] >= CLEAR_TREND:
        return Verdict(
            "warning",
            {"reward_length_corr": r, REWARD: reward[-1], LENGTH: length[-1]},
            f"The reward has risen in step with the completions' length (correlation {r:.2f} "
            f"over {n} steps; length {length[0]:.3g} to {length[-1]:.3g} tokens): the policy "
            "may be earning it by writing more, not better.",
            "Check the reward on short and long completions alike; normalise it for length, or "
            "add a length reward (kind 'length') to hold the length where it belongs.",
        )
    return None


def _falling(xs: list[float] | None, by: float = 0.8) -> bool:
    """A clear fall, and by a fifth at least (the last three steps against the first)."""
    if xs is None or trend(xs)[1] > -CLEAR_TREND:
        return False
    return median(xs[-3:]) < by * median(xs[:3])


def value_head(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    n = 2 * t.window
    ev = _full(h, EXPLAINED_VARIANCE, n)
    if ev is None or median(ev) >= t.explained_variance_floor:
        return None
    if trend(ev)[1] >= CLEAR_TREND:  # below the floor but climbing: it is learning
        return None
    med = median(ev)
    return Verdict(
        "warning" if med < -1.0 else "info",
        {EXPLAINED_VARIANCE: med, "steps": n},
        f"The value head is not learning: its explained variance stayed at {med:.2f} over "
        f"{n} steps (below {t.explained_variance_floor:g}; 1 predicts the returns, 0 no better "
        "than their mean), so the advantages are mostly noise.",
        "Give the value loss more weight (algorithm.vf_coef) or more passes "
        "(algorithm.epochs), or lower training.learning_rate if it swings.",
    )


def instability(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    skipped, before = h.now(SKIPPED), h.previous(SKIPPED) or 0.0
    if skipped is not None and skipped > before:
        return Verdict(
            "warning",
            {SKIPPED: skipped},
            f"{skipped:.0f} update(s) so far were skipped because their loss or gradient was "
            "not finite (inf or NaN); the weights did not move at those steps.",
            "Lower training.learning_rate, clip the rewards (algorithm.reward_clip), or keep "
            "training.max_grad_norm on.",
        )
    norms = finite(h.last(GRAD_NORM, t.window + 1))
    if len(norms) >= 4 and median(norms[:-1]) > 0:
        ratio = norms[-1] / median(norms[:-1])
        if ratio > t.grad_spike:
            return Verdict(
                "warning",
                {GRAD_NORM: norms[-1], "grad_norm_median": median(norms[:-1])},
                f"The gradient norm jumped to {norms[-1]:.3g}, {ratio:.0f} times its recent "
                "median: one batch pushed the weights far harder than the others.",
                "Lower training.learning_rate or training.max_grad_norm; clip or scale the "
                "rewards (algorithm.reward_clip, algorithm.scale_rewards).",
            )
    clipped = _full(h, CLIPFRAC, t.window)
    if clipped is not None and median(clipped) > t.clipfrac_max:
        return Verdict(
            "warning",
            {CLIPFRAC: median(clipped), "steps": t.window},
            f"{median(clipped):.0%} of the probability ratios were clipped over {t.window} "
            "steps: each update moves the policy further than the clip range allows.",
            "Lower training.learning_rate, or make fewer passes per batch (algorithm.epochs).",
        )
    return None


def non_finite(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    bad = {k: v for k in WATCHED if (v := h.now(k)) is not None and not math.isfinite(v)}
    if not bad:
        return None
    return Verdict(
        "critical",
        bad,
        f"{', '.join(bad)} became {'/'.join(sorted({str(v) for v in bad.values()}))}: the "
        "numbers of the run have overflowed, and what it learns from here is meaningless.",
        "Lower training.learning_rate, keep training.max_grad_norm on, clip the rewards "
        "(algorithm.reward_clip); resume from the last checkpoint before it happened.",
    )


def stalled(h: History, t: DoctorConfig, f: RunFacts) -> Verdict | None:
    n = t.stall_steps
    reward = _full(h, REWARD, n)
    if reward is None:
        return None
    slope, tstat, noise = trend(reward)
    if abs(tstat) >= t.stall_t:
        return None
    change = slope * (n - 1)
    return Verdict(
        "info",
        {"reward_change": change, "reward_noise": noise, "trend_t": tstat, "steps": n},
        f"Over the last {n} steps the reward moved {change:+.3g}, no more than its "
        f"step-to-step noise ({noise:.3g}) would by chance: it has stopped improving.",
        "Raise training.learning_rate, check that the reward separates good completions from "
        "bad, or stop here: more steps are unlikely to help.",
    )


RULES: dict[str, Rule] = {
    "no_learning_signal": no_learning_signal,
    "kl_runaway": kl_runaway,
    "kl_controller_saturated": kl_controller_saturated,
    "entropy_collapse": entropy_collapse,
    "truncation": truncation,
    "reward_hacking": reward_hacking,
    "value_head": value_head,
    "instability": instability,
    "non_finite": non_finite,
    "stalled": stalled,
}
