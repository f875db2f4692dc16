"""The little statistics the rules need, over short lists of floats (no numpy: a rule runs
after every step on a few dozen numbers)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def finite(xs: Sequence[float]) -> list[float]:
    return [x for x in xs if math.isfinite(x)]


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def trend(ys: Sequence[float]) -> tuple[float, float, float]:
    """(slope per step, its t statistic, the residual std) of a least-squares line through
    ys at steps 0..n-1. The t statistic measures the slope against the step-to-step noise:
    |t| < 1 is a trend chance alone would give. A perfect line has t = +/-inf (0 if flat)."""
    n = len(ys)
    if n < 3:
        return 0.0, 0.0, 0.0
    x_mean, y_mean = (n - 1) / 2, sum(ys) / n
    sxx = sum((i - x_mean) ** 2 for i in range(n))
    slope = sum((i - x_mean) * (y - y_mean) for i, y in enumerate(ys)) / sxx
    residual = sum((y - (y_mean + slope * (i - x_mean))) ** 2 for i, y in enumerate(ys))
    noise = math.sqrt(residual / (n - 2))
    scale = max(abs(y_mean), 1.0)
    if noise <= 1e-12 * scale:
        return slope, (0.0 if abs(slope) <= 1e-12 * scale else math.copysign(math.inf, slope)), 0.0
    return slope, slope / (noise / math.sqrt(sxx)), noise


def correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson's r; 0 when either list does not vary."""
    n = len(xs)
    if n < 3:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx <= 1e-12 * max(abs(mx), 1.0) or sy <= 1e-12 * max(abs(my), 1.0):
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)
