"""The run doctor's findings on the curves: a dashed vertical line at the step each began,
on the plots that show its problem, in the colour of its severity."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyqtgraph as pg
from PySide6.QtCore import Qt

from core.events import Finding

SEVERITY_COLOURS = {"info": "#5b8fd6", "warning": "#e0a030", "critical": "#d64040"}

# Which dashboard plots (by title) show each kind of finding's figures
KIND_PLOTS = {
    "no_learning_signal": ("Reward",),
    "kl_runaway": ("KL to reference",),
    "kl_controller_saturated": ("KL to reference",),
    "entropy_collapse": ("Entropy",),
    "truncation": ("Response length",),
    "reward_hacking": ("Reward", "KL to reference", "Response length"),
    "value_head": ("Losses",),
    "instability": ("Losses", "Clipping"),
    "non_finite": ("Losses",),
    "stalled": ("Reward",),
}

Mark = tuple[pg.PlotItem, pg.InfiniteLine]


def draw_marks(plots: Mapping[str, pg.PlotItem], findings: Iterable[Finding]) -> list[Mark]:
    marks = []
    for f in findings:
        pen = pg.mkPen(SEVERITY_COLOURS.get(f.severity, "#888888"), width=1.5, style=Qt.DashLine)
        for title in KIND_PLOTS.get(f.kind, ("Reward",)):
            plot = plots.get(title)
            if plot is None:
                continue
            line = pg.InfiniteLine(pos=f.step, angle=90, movable=False, pen=pen)
            line.setToolTip(f"{f.severity}: {f.kind} from step {f.step}")
            line.finding = f  # which finding it marks (tests, the hover)
            plot.addItem(line, ignoreBounds=True)
            marks.append((plot, line))
    return marks


def remove_marks(marks: Iterable[Mark]) -> None:
    for plot, line in marks:
        if line.scene() is not None:  # a plot's clear() may have taken it already
            plot.removeItem(line)


def focus_plots(plots: Iterable[pg.PlotItem], step: int, span: float) -> None:
    """Every plot's x range centred on `step`, `span` steps either side."""
    for plot in plots:
        plot.setXRange(step - span, step + span, padding=0)
