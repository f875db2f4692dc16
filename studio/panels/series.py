"""Growable numpy buffers for live curves, and EMA smoothing.

Points arrive a few per second and are drawn on a timer, so appends are O(1)
(amortised doubling) and a redraw hands pyqtgraph views of the filled part.
"""

from __future__ import annotations

import numpy as np


class Series:
    """One metric's points: step, wall time and value, in arrival order."""

    def __init__(self, capacity: int = 256) -> None:
        self._data = np.empty((3, capacity), dtype=np.float64)
        self.n = 0
        self._smooth = _Smoothed()

    def append(self, step: float, wall_time: float, value: float) -> None:
        if self.n == self._data.shape[1]:
            grown = np.empty((3, self.n * 2), dtype=np.float64)
            grown[:, : self.n] = self._data[:, : self.n]
            self._data = grown
        self._data[:, self.n] = (step, wall_time, value)
        self.n += 1

    def extend(self, steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray) -> None:
        for s, w, v in zip(steps, wall_times, values):
            self.append(float(s), float(w), float(v))

    @classmethod
    def from_arrays(cls, steps, wall_times, values) -> Series:
        out = cls(max(256, len(steps)))
        n = len(steps)
        out._data[0, :n], out._data[1, :n], out._data[2, :n] = steps, wall_times, values
        out.n = n
        out._smooth = _Smoothed()
        return out

    @property
    def steps(self) -> np.ndarray:
        return self._data[0, : self.n]

    @property
    def wall_times(self) -> np.ndarray:
        return self._data[1, : self.n]

    @property
    def values(self) -> np.ndarray:
        return self._data[2, : self.n]

    def smoothed(self, weight: float) -> np.ndarray:
        """EMA of the values, extended incrementally as points arrive."""
        if weight <= 0:
            return self.values
        return self._smooth.update(self.values, weight)

    def last(self) -> float | None:
        return float(self._data[2, self.n - 1]) if self.n else None


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard's smoothing slider).

    NaN and inf points are skipped (the curve carries the last finite average), so
    one bad step does not blank the rest of the smoothed curve.
    """
    if weight <= 0 or len(values) == 0:
        return values
    return _Smoothed().update(np.asarray(values, dtype=np.float64), weight)


class _Smoothed:
    """The EMA of a growing array for one weight; recomputed only when the weight moves."""

    def __init__(self) -> None:
        self.weight = -1.0
        self.out = np.empty(0)
        self.acc = self.norm = 0.0

    def update(self, values: np.ndarray, weight: float) -> np.ndarray:
        if weight != self.weight or len(values) < len(self.out):
            self.weight, self.out, self.acc, self.norm = weight, np.empty(0), 0.0, 0.0
        done = len(self.out)
        if done < len(values):
            tail = np.empty(len(values) - done)
            acc, norm = self.acc, self.norm
            for i, v in enumerate(values[done:].tolist()):
                if v == v and abs(v) != float("inf"):
                    acc = weight * acc + (1 - weight) * v
                    norm = weight * norm + (1 - weight)
                tail[i] = acc / norm if norm else np.nan
            self.acc, self.norm = acc, norm
            self.out = np.concatenate([self.out, tail])
        return self.out
