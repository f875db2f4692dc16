"""Settings changed while a run went on, on its curves: a dotted vertical line at the step
after which they hold, on every plot, labelled on the reward plot ("training.steps 40 ->
25"). Shown live as the run makes the change, and when the stored run is opened later.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt

from core.events import SettingsChanged
from core.store import Store
from studio.panels.dashboard import Dashboard, RunSeries
from studio.panels.finding_marks import Mark, remove_marks

COLOUR = "#3c9a5f"
LABELLED = "Reward"  # the plot whose line says what changed (the others: their tooltip)


def marks_on(dashboard: Dashboard) -> SettingMarks:
    """The dashboard's settings marks, made on first use."""
    return dashboard.findChild(SettingMarks) or SettingMarks(dashboard)


class SettingMarks(QObject):
    """Which run's curves have which changes; draws them whenever that run alone is shown
    (a redraw that cleared the plots draws them again)."""

    def __init__(self, dashboard: Dashboard) -> None:
        super().__init__(dashboard)
        self.dashboard = dashboard
        self.changes: dict[int, tuple[RunSeries, list[SettingsChanged]]] = {}  # by id(series)
        self.marks: list[Mark] = []
        self._drawn_for: RunSeries | None = None
        self._followed: QObject | None = None
        self._live: RunSeries | None = None  # the followed run's curves
        dashboard.redrawn.connect(self.refresh)

    def follow(self, run, series: RunSeries) -> None:
        """The changes `run` (a `studio.live.LiveRun`) makes from now on go on `series`."""
        self.changes.setdefault(id(series), (series, []))
        if run is not self._followed:
            self._followed, self._live = run, series
            run.sig_events.connect(lambda events: self._on_events(series, events))

    def show_stored(
        self, store: Store, run_id: int, series: RunSeries, up_to: int | None = None
    ) -> None:
        """The stored changes of `run_id` (`up_to`: those made by then), on its `series`."""
        stored = [c for c in store.setting_changes(run_id) if up_to is None or c.step <= up_to]
        kept = {id(s) for s in (*self.dashboard.runs, self._live)}
        self.changes = {k: v for k, v in self.changes.items() if k in kept}  # the old go
        self.changes[id(series)] = (series, stored)
        self._drawn_for = None
        self.refresh()

    def _on_events(self, series: RunSeries, events: Iterable) -> None:
        made = [e for e in events if isinstance(e, SettingsChanged)]
        if made:
            self.changes.setdefault(id(series), (series, []))[1].extend(made)
            self._drawn_for = None
            self.refresh()

    def refresh(self) -> None:
        """Draw the shown run's changes unless they are on the plots already."""
        runs = self.dashboard.runs
        series = runs[0] if len(runs) == 1 else None
        on_plots = all(line.scene() is not None for _plot, line in self.marks)
        if series is self._drawn_for and on_plots:
            return
        remove_marks(self.marks)
        _series, changes = self.changes.get(id(series), (None, []))
        self.marks = draw(self.dashboard.plots, changes)
        self._drawn_for = series


def describe(change: SettingsChanged) -> str:
    return f"step {change.step}: {change.described}"


def draw(plots: dict[str, pg.PlotItem], changes: Iterable[SettingsChanged]) -> list[Mark]:
    marks = []
    pen = pg.mkPen(COLOUR, width=1.5, style=Qt.DotLine)
    for change in changes:
        text = describe(change)
        for title, plot in plots.items():
            label = text.split(": ", 1)[1] if title == LABELLED else None
            line = pg.InfiniteLine(
                pos=change.step,
                angle=90,
                movable=False,
                pen=pen,
                label=label,
                labelOpts={"position": 0.9, "color": COLOUR, "anchors": [(0, 1), (0, 1)]},
            )
            line.setToolTip(f"Settings changed after {text}")
            line.change = change  # which change it marks (tests, the hover)
            plot.addItem(line, ignoreBounds=True)
            marks.append((plot, line))
    return marks
