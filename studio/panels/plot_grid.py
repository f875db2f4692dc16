"""The dashboard's plots in a grid that reflows to the room it has.

Three columns on a wide window, two or one on a narrow one (by the grid's own width,
again on every resize). A plot never gets shorter than `MIN_PLOT_HEIGHT`: when the
rows do not fit, the grid scrolls instead of squashing them. Each plot's legend sits
below its x axis, not over the curves, and wraps into as many columns as fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea

MIN_PLOT_WIDTH = 280  # below this the axes and the title crowd the curves
MIN_PLOT_HEIGHT = 150
MAX_COLUMNS = 3
LEGEND_ENTRY_WIDTH = 150  # a sample line and a short key, at 8 pt
TITLE_HEIGHT = 22  # pyqtgraph gives a title 30 px, taken from the curves
LEGEND_ROW = 4  # the PlotItem's own layout: title 0, top axis 1, view 2, bottom axis 3


def columns_for(width: int) -> int:
    return max(1, min(MAX_COLUMNS, width // MIN_PLOT_WIDTH))


def legend_name(key: str, limit: int = 22) -> str:
    """A key short enough for a legend entry; the hover read-out has it whole."""
    return key if len(key) <= limit else key[: limit - 1] + "…"


class PlotGrid(QScrollArea):
    """One GraphicsLayoutWidget (`graphics`) holding a PlotItem per title (`plots`)."""

    def __init__(self, titles: Iterable[str]) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.NoFrame)
        self.graphics = pg.GraphicsLayoutWidget()
        self.plots: dict[str, pg.PlotItem] = {t: _new_plot(t) for t in titles}
        self.columns = 0
        self.setWidget(self.graphics)
        self.reflow()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.reflow()

    def reflow(self) -> None:
        columns = columns_for(self.width())
        if columns == self.columns:
            return
        self.columns = columns
        layout = self.graphics.ci
        for plot in self.plots.values():
            if plot in layout.items:
                layout.removeItem(plot)
        for i, plot in enumerate(self.plots.values()):
            layout.addItem(plot, row=i // columns, col=i % columns)
            plot.legend.setColumnCount(self.legend_columns())
        rows = math.ceil(len(self.plots) / columns)
        _, top, _, bottom = layout.layout.getContentsMargins()
        gaps = (rows - 1) * layout.layout.verticalSpacing()
        self.graphics.setMinimumHeight(int(rows * MIN_PLOT_HEIGHT + gaps + top + bottom))

    def legend_columns(self) -> int:
        return max(1, self.width() // max(1, self.columns) // LEGEND_ENTRY_WIDTH)


def _new_plot(title: str) -> pg.PlotItem:
    plot = pg.PlotItem()
    plot.setTitle(title, size="10pt")
    plot.layout.setRowFixedHeight(0, TITLE_HEIGHT)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setDownsampling(auto=True, mode="peak")
    plot.setClipToView(True)
    # In the plot's own layout, under the x axis: curves are never hidden behind it.
    plot.legend = pg.LegendItem(labelTextSize="8pt", frame=False, verSpacing=-6)
    plot.legend.layout.setContentsMargins(0, 0, 0, 0)
    plot.layout.addItem(plot.legend, LEGEND_ROW, 1)
    return plot
