"""The curve buffers and their smoothing."""

from __future__ import annotations

import math

import numpy as np

from studio.panels.series import Series, ema


def test_series_grows_and_smooths_incrementally():
    s = Series(capacity=2)
    for i, v in enumerate([1.0, 2.0, math.nan, 3.0, 4.0]):
        s.append(i, i * 0.5, v)
    assert s.n == 5 and list(s.steps) == [0, 1, 2, 3, 4]
    # debiased EMA with weight 0.5 by hand; the NaN point carries the last average
    expected = [1.0, (0.25 * 1 + 0.5 * 2) / 0.75, (0.25 * 1 + 0.5 * 2) / 0.75]
    np.testing.assert_allclose(s.smoothed(0.5)[:3], expected)
    whole = ema(s.values, 0.5)
    s.append(5, 2.5, 5.0)  # the cached EMA extends to the new point only
    np.testing.assert_allclose(s.smoothed(0.5)[:5], whole)
    np.testing.assert_allclose(s.smoothed(0.5), ema(s.values, 0.5))
    assert s.smoothed(0.0) is not None and s.smoothed(0.0)[3] == 3.0
