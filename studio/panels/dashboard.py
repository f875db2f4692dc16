"""Live training curves (pyqtgraph): one panel per family of metrics.

Points are appended to numpy buffers as events arrive; a timer redraws at most
ten times a second, and only when something changed. Curves use pyqtgraph's
peak downsampling and clip-to-view, so 100k-point runs stay quick to draw.
Several runs can be shown at once (compare): then the colour tells the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from core.events import Finding
from core.store import Store
from studio.panels.elided_label import ElidedLabel
from studio.panels.finding_marks import Mark, draw_marks, focus_plots, remove_marks
from studio.panels.plot_grid import PlotGrid, legend_name
from studio.panels.run_legend import RunLegend
from studio.panels.series import Series

REDRAW_MS = 100


@dataclass(frozen=True)
class Panel:
    title: str
    keys: tuple[str, ...]  # exact keys; "reward/*" style prefixes end with "*"


PANELS = (
    Panel("Reward", ("reward/mean", "reward/*")),
    Panel("KL to reference", ("objective/kl", "objective/kl_coef")),
    Panel("Entropy", ("objective/entropy",)),
    Panel("Losses", ("loss/policy", "loss/value", "loss/q", "loss/v", "loss/cql", "loss/awac")),
    Panel("Clipping", ("policy/clipfrac", "policy/approx_kl", "value/clipfrac")),
    Panel("Response length", ("response/length_mean",)),
    Panel("Tokens / s", ("perf/tokens_per_s",)),
    Panel("Memory (MB)", ("memory/peak_mb",)),
    Panel("Held-out evaluation", ("eval/reward/mean", "eval/kl")),
)
BAND = ("reward/mean", "reward/std")  # drawn as mean +/- std
_NOT_COMPONENTS = {"reward/mean", "reward/std"}
_KEY_PEN = "#a0a0a0"  # compare mode: a metric's legend entry shows its line style, not a run
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def panel_for(key: str) -> Panel | None:
    for panel in PANELS:
        for pattern in panel.keys:
            if pattern == key:
                return panel
            if (
                pattern.endswith("*")
                and key.startswith(pattern[:-1])
                and key not in _NOT_COMPONENTS
                and "/" not in key[len(pattern) - 1 :]
            ):
                return panel
    return None


class RunSeries:
    """All metrics of one run, keyed by metric name; `short` names it where room is tight
    (a compare view's legend and read-out), `label` in full."""

    def __init__(self, label: str, short: str | None = None) -> None:
        self.label = label
        self.short = short or label
        self.series: dict[str, Series] = {}

    def add(self, step: int, wall_time: float, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            if value is None:
                continue
            self.series.setdefault(key, Series()).append(step, wall_time, float(value))

    @classmethod
    def from_store(
        cls, label: str, metrics: Mapping, up_to: int | None = None, short: str | None = None
    ) -> RunSeries:
        """From `Store.metrics`; `up_to` keeps the steps a resumed run will not redo."""
        out = cls(label, short)
        for key, s in metrics.items():
            keep = slice(None) if up_to is None else s.steps <= up_to
            out.series[key] = Series.from_arrays(s.steps[keep], s.wall_times[keep], s.values[keep])
        return out


class Dashboard(QWidget):
    """The grid of panels plus smoothing, x-axis choice, hover read-out and PNG export."""

    redrawn = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunSeries] = []
        self._curves: dict[tuple[int, str], pg.PlotDataItem] = {}
        self._bands: dict[int, tuple[pg.PlotDataItem, pg.PlotDataItem, pg.FillBetweenItem]] = {}
        self._legend_keys: set[tuple[str, str]] = set()  # (panel, key) named in compare mode
        self._dirty = False
        self.smoothing = 0.0
        self.x_axis = "step"
        self.marks: list[Mark] = []  # the doctor's findings on the curves

        self.grid = PlotGrid(panel.title for panel in PANELS)
        self.graphics, self.plots = self.grid.graphics, self.grid.plots
        self.run_legend = RunLegend()
        self.readout = ElidedLabel("Hover a plot to read its values")
        self.readout.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self._hover = pg.SignalProxy(
            self.graphics.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._build_bar())
        layout.addWidget(self.run_legend)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.readout)

        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw_if_dirty)
        self._timer.start()

    def _build_bar(self) -> QHBoxLayout:
        """Smoothing, the x axis and export, above the plots."""
        self.smooth_slider = QSlider(Qt.Horizontal)
        self.smooth_slider.setRange(0, 99)
        self.smooth_slider.setToolTip("Exponential moving average of the curves (0 = raw)")
        self.smooth_slider.valueChanged.connect(self._set_smoothing)
        self.smooth_label = QLabel("Smoothing 0.00")
        self.x_choice = QComboBox()
        self.x_choice.addItems(["Step", "Wall time (s)"])
        self.x_choice.currentIndexChanged.connect(self._set_x_axis)
        export = QPushButton("Export PNG...")
        export.setToolTip("Save the dashboard as a PNG image")
        export.clicked.connect(self._export_dialog)
        bar = QHBoxLayout()
        bar.addWidget(self.smooth_label)
        bar.addWidget(self.smooth_slider, 1)
        bar.addWidget(QLabel("X axis"))
        bar.addWidget(self.x_choice)
        bar.addWidget(export)
        return bar

    # --- data in -------------------------------------------------------------------

    def show_runs(self, runs: Iterable[RunSeries]) -> None:
        """Replace what is drawn (one run, or several to compare)."""
        self.mark_findings([])
        for plot in self.plots.values():
            plot.clear()
            if plot.legend is not None:
                plot.legend.clear()
        self._curves.clear()
        self._bands.clear()
        self._legend_keys.clear()
        self.runs = list(runs)
        compare = len(self.runs) > 1
        self.run_legend.show_runs(
            [(self._color(r, 0), run.short, run.label) for r, run in enumerate(self.runs)]
            if compare
            else []
        )
        self._dirty = True
        self.redraw_if_dirty()

    def show_stored(
        self, store: Store, run_ids: list[int], up_to: int | None = None
    ) -> list[RunSeries]:
        """Show stored runs (`up_to`: their steps up to one), labelled "ID: name"."""
        runs = []
        for i in run_ids:
            label, short = f"{i}: {store.run(i).name}", f"#{i} {store.run(i).name}"
            runs.append(RunSeries.from_store(label, store.metrics(i), up_to, short))
        self.show_runs(runs)
        return runs

    def add_metrics(self, run_index: int, step: int, wall_time: float, values) -> None:
        self.runs[run_index].add(step, wall_time, values)
        self._dirty = True

    def mark_dirty(self) -> None:
        """The shown runs' buffers grew: redraw on the next tick."""
        self._dirty = True

    def mark_findings(self, findings: Iterable[Finding]) -> None:
        """The doctor's findings as lines at their steps, on the plots of their problems."""
        remove_marks(self.marks)
        self.marks = draw_marks(self.plots, findings)

    def focus_step(self, step: int) -> None:
        """Every plot shows the steps around `step` (the x axis turns to steps)."""
        self.x_choice.setCurrentIndex(0)
        reward = next((run.series.get("reward/mean") for run in self.runs), None)
        last = int(reward.steps[-1]) if reward is not None and reward.n else step
        focus_plots(self.plots.values(), step, span=max(5, last // 8))

    # --- drawing -------------------------------------------------------------------

    def _set_smoothing(self, value: int) -> None:
        self.smoothing = value / 100
        self.smooth_label.setText(f"Smoothing {self.smoothing:.2f}")
        self._dirty = True

    def _set_x_axis(self, index: int) -> None:
        self.x_axis = "step" if index == 0 else "wall_time"
        for plot in self.plots.values():
            plot.setLabel("bottom", "step" if index == 0 else "seconds")
        self._dirty = True

    def _x(self, s: Series) -> np.ndarray:
        return s.steps if self.x_axis == "step" else s.wall_times

    def _color(self, run_index: int, key_index: int) -> str:
        index = run_index if len(self.runs) > 1 else key_index
        return _PALETTE[index % len(_PALETTE)]

    def redraw_if_dirty(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraw()

    def redraw(self) -> None:
        for r, run in enumerate(self.runs):
            keys_in_panel: dict[str, int] = {}
            for key in sorted(run.series):
                panel = panel_for(key)
                if panel is None:
                    continue
                k = keys_in_panel[panel.title] = keys_in_panel.get(panel.title, -1) + 1
                s = run.series[key]
                curve = self._curves.get((r, key))
                if curve is None:
                    curve = self._new_curve(panel.title, key, r, k)
                    self._curves[(r, key)] = curve
                y = _finite(s.smoothed(self.smoothing))
                curve.setData(self._x(s), y)
                _mark_lone_point(curve, y)
            self._draw_band(r, run)
        self.redrawn.emit()

    def _new_curve(self, title: str, key: str, r: int, k: int) -> pg.PlotDataItem:
        """Run `r`'s curve of its `k`th metric in the panel, named in the plot's legend.
        Comparing, the colour tells the run (see `run_legend`) and the line style the
        metric, so the legend names each metric once, by its line style."""
        plot = self.plots[title]
        compare = len(self.runs) > 1
        style = Qt.DashLine if compare and k else Qt.SolidLine
        pen = pg.mkPen(self._color(r, k), width=1.5, style=style)
        if not compare:
            return plot.plot(name=legend_name(key), pen=pen, connect="finite")
        if (title, key) not in self._legend_keys:
            self._legend_keys.add((title, key))
            sample = pg.PlotDataItem(pen=pg.mkPen(_KEY_PEN, width=1.5, style=style))
            plot.legend.addItem(sample, legend_name(key))
        return plot.plot(pen=pen, connect="finite")

    def _draw_band(self, r: int, run: RunSeries) -> None:
        mean, std = (run.series.get(k) for k in BAND)
        if mean is None or std is None or mean.n != std.n:
            return
        if r not in self._bands:
            plot = self.plots["Reward"]
            color = pg.mkColor(self._color(r, 0))
            upper, lower = pg.PlotDataItem(pen=None), pg.PlotDataItem(pen=None)
            color.setAlpha(50)
            fill = pg.FillBetweenItem(upper, lower, brush=pg.mkBrush(color))
            for item in (upper, lower, fill):
                plot.addItem(item)
            self._bands[r] = (upper, lower, fill)
        upper, lower, _ = self._bands[r]
        m = mean.smoothed(self.smoothing)
        sd = std.smoothed(self.smoothing)
        x = self._x(mean)
        upper.setData(x, _finite(m + sd))
        lower.setData(x, _finite(m - sd))

    def curve_points(self, key: str, run_index: int = 0) -> int:
        """How many points the drawn curve of `key` holds (for tests and the benchmark)."""
        curve = self._curves.get((run_index, key))
        if curve is None or curve.xData is None:
            return 0
        return len(curve.xData)

    # --- hover and export -----------------------------------------------------------

    def _on_hover(self, event) -> None:
        pos = event[0]
        for title, plot in self.plots.items():
            if not plot.sceneBoundingRect().contains(pos):
                continue
            x = plot.vb.mapSceneToView(pos).x()
            parts = []
            for (r, key), curve in self._curves.items():
                if panel_for(key) is None or panel_for(key).title != title:
                    continue
                xs, ys = curve.xData, curve.yData
                if xs is None or not len(xs):
                    continue
                i = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
                if i and abs(xs[i - 1] - x) < abs(xs[i] - x):
                    i -= 1
                label = f"{self.runs[r].short}: {key}" if len(self.runs) > 1 else key
                parts.append(f"{label} = {_fmt(ys[i])} @ {_fmt(xs[i])}")
            self.readout.setText(f"{title} — " + ("; ".join(parts) if parts else "no data"))
            return

    def export_png(self, path: str, panel: str | None = None) -> None:
        """Save the whole dashboard, or one panel by title, as a PNG."""
        item = self.plots[panel] if panel else self.graphics.scene()
        ImageExporter(item).export(path)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export plots", "curves.png", "PNG (*.png)")
        if path:
            self.export_png(path)


def _finite(y: np.ndarray) -> np.ndarray:
    """NaN breaks the line there; inf would wreck the auto-range, so it is hidden too."""
    return np.where(np.isfinite(y), y, np.nan)


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def _mark_lone_point(curve: pg.PlotDataItem, y) -> None:
    """A line needs two points: a series with one (the held-out evaluation at step 0, the
    first step) is drawn as a dot in the curve's colour, until a second point comes."""
    lone = int(np.isfinite(np.asarray(y, dtype=float)).sum()) == 1
    if lone == (curve.opts.get("symbol") is not None):
        return
    if lone:
        color = curve.opts["pen"].color()
        curve.setSymbol("o")
        curve.setSymbolSize(7)
        curve.setSymbolBrush(color)
        curve.setSymbolPen(color)
    else:
        curve.setSymbol(None)
