"""Each rule on synthetic metric streams: the stream built to show its problem makes the
finding (from the step the figures first show it), and a healthy stream makes none."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.config import DoctorConfig
from core.doctor import Doctor, RunFacts

STEPS = 40


def healthy(steps: int = STEPS, seed: int = 0) -> list[dict[str, float]]:
    """A run going well: the reward climbs through its noise, KL stays under target,
    entropy eases off, most completions end, the value head learns."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(steps):
        rows.append(
            {
                "reward/mean": 0.1 + 0.02 * i + rng.normal(0, 0.05),
                "reward/std": 0.3 + rng.normal(0, 0.02),
                "objective/kl": min(3.0, 0.15 * i) + abs(rng.normal(0, 0.2)),
                "objective/kl_coef": 0.05,
                "objective/entropy": 2.0 - 0.01 * i + rng.normal(0, 0.05),
                "response/ended_frac": 0.7 + rng.normal(0, 0.05),
                "response/length_mean": 20 + rng.normal(0, 2),
                "response/distinct_2": 0.8 + rng.normal(0, 0.03),
                "value/explained_variance": -0.3 + 0.04 * i + rng.normal(0, 0.05),
                "policy/grad_norm": 1.0 + abs(rng.normal(0, 0.2)),
                "policy/clipfrac": 0.1 + abs(rng.normal(0, 0.02)),
                "objective/frac_reward_zero_std": 0.1,
                "loss/policy": 0.01,
                "loss/value": 0.5,
            }
        )
    return rows


def findings(rows, facts: RunFacts | None = None, **settings):
    doctor = Doctor(DoctorConfig(**settings), facts or RunFacts())
    for step, values in enumerate(rows, start=1):
        doctor.observe(step, values)
    return {f.kind: f for f in doctor.findings}


def with_(rows, key, values_from: int, fn):
    """`rows` with `key` set to fn(i) from step `values_from` on (i counts from 0 there)."""
    out = [dict(r) for r in rows]
    for i, row in enumerate(out[values_from - 1 :]):
        row[key] = fn(i)
    return out


def test_a_healthy_run_makes_no_finding():
    for seed in range(5):
        assert findings(healthy(seed=seed)) == {}, seed


def test_no_learning_signal_from_groups_all_alike_and_from_a_reward_without_spread():
    grouped = with_(healthy(), "objective/frac_reward_zero_std", 11, lambda i: 1.0)
    found = findings(grouped)["no_learning_signal"]
    assert (found.step, found.severity) == (13, "warning")  # the window's median: 3 of 5 steps
    assert found.evidence["objective/frac_reward_zero_std"] == 1.0
    assert "algorithm.group_size" in found.suggestion
    flat = with_(healthy(), "reward/std", 1, lambda i: 0.0)
    assert findings(flat)["no_learning_signal"].step == 5
    # most groups alike, but not the window's median: no finding
    some = with_(healthy(), "objective/frac_reward_zero_std", 1, lambda i: 0.8)
    assert "no_learning_signal" not in findings(some)


def test_kl_runaway_far_above_target_and_growing_fast():
    far = with_(healthy(), "objective/kl", 20, lambda i: 25.0)
    found = findings(far)["kl_runaway"]
    assert (found.step, found.severity) == (20, "warning")
    assert found.evidence["objective/kl"] == 25.0 and "training.learning_rate" in found.suggestion
    blown = with_(healthy(), "objective/kl", 20, lambda i: 85.0)
    assert findings(blown)["kl_runaway"].severity == "critical"
    doubling = with_(healthy(), "objective/kl", 20, lambda i: 1.0 * 2**i)
    found = findings(doubling)["kl_runaway"]
    assert found.step == 24 and found.evidence["kl_growth"] >= 4  # 8 > target 6, 8x in 3 steps
    # above target, steady: the controller's business, not a runaway
    assert "kl_runaway" not in findings(with_(healthy(), "objective/kl", 20, lambda i: 8.0))


def test_kl_controller_saturated_only_with_the_adaptive_controller():
    above = with_(healthy(), "objective/kl", 20, lambda i: 9.0)
    found = findings(above)["kl_controller_saturated"]
    assert found.step == 24 and "algorithm.kl_horizon" in found.suggestion
    fixed = RunFacts(adaptive_kl=False)
    assert "kl_controller_saturated" not in findings(above, fixed)


def test_entropy_collapse_and_samples_growing_alike():
    falling = with_(healthy(), "objective/entropy", 15, lambda i: 2.0 * 0.5**i)
    found = findings(falling)["entropy_collapse"]
    # 2 * 0.5**i < 0.2 (a tenth of the start) from i = 4; the median of three from i = 5
    assert found.step == 15 + 5 and found.severity == "critical"  # as it goes on to ~0
    dead = with_(healthy(), "objective/entropy", 15, lambda i: 1e-9)
    assert findings(dead)["entropy_collapse"].severity == "critical"
    alike = with_(healthy(), "response/distinct_2", 10, lambda i: 0.2)
    found = findings(alike)["entropy_collapse"]
    assert found.step == 11 and found.evidence["response/distinct_2"] == pytest.approx(0.2)


def test_truncation_is_a_warning_when_the_model_can_end_and_a_note_when_it_never_does():
    cut = with_(healthy(), "response/ended_frac", 10, lambda i: 0.1)
    found = findings(cut, RunFacts(max_new_tokens=16))["truncation"]
    assert (found.step, found.severity) == (12, "warning")
    assert (
        found.evidence["max_new_tokens"] == 16 and "generation.max_new_tokens" in found.suggestion
    )
    never = with_(healthy(), "response/ended_frac", 1, lambda i: 0.0)
    assert findings(never)["truncation"].severity == "info"
    assert "truncation" not in findings(with_(healthy(), "response/ended_frac", 1, lambda i: 0.5))


def test_reward_hacking_kl_and_narrowing_or_length_alone():
    rows = with_(healthy(), "objective/kl", 16, lambda i: 2.0 * 1.5**i)
    rows = with_(rows, "response/distinct_2", 16, lambda i: 0.8 - 0.04 * i)
    found = findings(rows, disable=("kl_runaway",))["reward_hacking"]
    assert found.severity == "warning" and found.evidence["objective/kl"] > 10
    longer = with_(healthy(), "response/length_mean", 1, lambda i: 20 + 4 * i)
    longer = [dict(r, **{"reward/mean": 0.1 * r["response/length_mean"]}) for r in longer]
    found = findings(longer)["reward_hacking"]
    assert found.evidence["reward_length_corr"] > 0.99 and found.step == 10
    # the same, asked for by a length reward: no suspicion
    assert "reward_hacking" not in findings(longer, RunFacts(reward_kinds=("length",)))


def test_value_head_below_zero_is_a_note_far_below_a_warning():
    poor = with_(healthy(), "value/explained_variance", 1, lambda i: -0.4)
    found = findings(poor, RunFacts(algorithm="ppo"))["value_head"]
    assert (found.step, found.severity) == (10, "info")
    worse = with_(healthy(), "value/explained_variance", 1, lambda i: -3.0)
    assert findings(worse)["value_head"].severity == "warning"


def test_instability_spikes_clipping_and_skipped_updates():
    spike = with_(healthy(), "policy/grad_norm", 30, lambda i: 50.0 if i == 0 else 1.0)
    found = findings(spike)["instability"]
    assert found.step == 30 and found.evidence["policy/grad_norm"] == 50.0
    clipped = with_(healthy(), "policy/clipfrac", 10, lambda i: 0.5)
    assert findings(clipped)["instability"].step == 12
    skipped = with_(healthy(), "loss/skipped_nonfinite", 12, lambda i: 1.0 + (i > 3))
    found = findings(skipped)["instability"]
    assert found.step == 12 and "not finite" in found.explanation


def test_non_finite_is_critical():
    rows = with_(healthy(), "loss/value", 7, lambda i: math.nan)
    found = findings(rows)["non_finite"]
    assert (found.step, found.severity) == (7, "critical") and "loss/value" in found.explanation


def test_stalled_against_the_noise_not_a_fixed_threshold():
    rng = np.random.default_rng(1)
    noise = with_(healthy(), "reward/mean", 1, lambda i: 0.5 + rng.normal(0, 0.2))
    found = findings(noise)["stalled"]
    assert found.severity == "info" and found.step >= 20  # 20 steps looked at
    assert abs(found.evidence["reward_change"]) < found.evidence["reward_noise"] * 2
    # a rise of 0.002 a step is tiny, yet ten times the noise: not stalled
    quiet = with_(healthy(), "reward/mean", 1, lambda i: 0.5 + 0.002 * i + rng.normal(0, 0.0002))
    assert "stalled" not in findings(quiet)


def test_one_problem_is_one_finding_raised_in_severity_and_new_when_it_returns():
    kl = [1.0] * 10 + [25.0] * 5 + [85.0] * 5 + [1.0] * 10 + [25.0] * 5
    rows = [dict(r, **{"objective/kl": k}) for r, k in zip(healthy(35), kl)]
    doctor = Doctor(DoctorConfig(), RunFacts(adaptive_kl=False))
    sent = []
    for step, values in enumerate(rows, start=1):
        sent += [
            (f.step, f.severity, step)
            for f in doctor.observe(step, values)
            if f.kind == "kl_runaway"
        ]
    assert sent == [(11, "warning", 11), (11, "critical", 16), (31, "warning", 31)]
    first, again = [f for f in doctor.findings if f.kind == "kl_runaway"]
    assert (first.step, first.last_step, first.severity) == (11, 20, "critical")
    assert (again.step, again.last_step) == (31, 35)


def test_rules_turn_off_one_by_one_or_all_together():
    rows = with_(healthy(), "objective/kl", 20, lambda i: 85.0)
    assert "kl_runaway" in findings(rows)
    assert "kl_runaway" not in findings(rows, disable=("kl_runaway",))
    assert findings(rows, enabled=False) == {}
