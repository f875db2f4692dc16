"""The Health panel: what the run doctor found in the run on screen, one row per finding
(severity in colour, where it began, what it means, what to try). Clicking a row moves the
plots to its step; every finding is also a line on the curves it concerns."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.events import Finding
from core.store import Store
from studio.panels.dashboard import Dashboard
from studio.panels.finding_marks import SEVERITY_COLOURS

COLUMNS = ("Severity", "Finding", "Steps", "What it means", "What to try")


class HealthPanel(QWidget):
    sig_step_chosen = Signal(int)
    """The user clicked a finding: the step it began (the plots have moved there)."""

    def __init__(self, dashboard: Dashboard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dashboard = dashboard
        self.findings: dict[tuple[str, int], Finding] = {}  # shown, by (kind, start step)
        self.live: dict[tuple[str, int], Finding] = {}  # the live run's
        self.showing_live = False
        self.summary = QLabel()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setWordWrap(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        for col in (3, 4):
            header.setSectionResizeMode(col, QHeaderView.Stretch)
        self.table.cellClicked.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self._show()

    # --- what is shown ------------------------------------------------------------------

    def show_findings(self, findings: Iterable[Finding]) -> None:
        self.findings = {(f.kind, f.step): f for f in findings}
        self._show()

    def show_stored(self, store: Store, run_id: int, up_to: int | None = None) -> None:
        """A stored run's findings (`up_to`: those that began by then: a resumed run)."""
        self.showing_live = False
        found = store.findings(run_id)
        self.show_findings(f for f in found if up_to is None or f.step <= up_to)

    def follow(self, run) -> None:
        """The findings of a run that starts training now (a `studio.live.LiveRun`); a
        resumed one keeps those it had, shown just before."""
        self.live = dict(self.findings) if run.resume_id is not None else {}
        self.show_live()
        run.sig_events.connect(self._on_events)
        run.sig_ended.connect(lambda ended: self._ended(run.store, ended.run_id))

    def show_live(self) -> None:
        self.showing_live = True
        self.show_findings(self.live.values())

    def add(self, finding: Finding) -> None:
        """A live finding: new, or one already shown grown worse or gone on."""
        self.live[finding.kind, finding.step] = finding
        if self.showing_live:
            self.show_live()

    def _on_events(self, events: list) -> None:
        for event in events:
            if isinstance(event, Finding):
                self.add(event)

    def _ended(self, store: Store, run_id: int | None) -> None:
        """The findings as the run stored them at its end (each one's last step; a run of
        several processes sends its findings only through the store)."""
        if not run_id:
            return
        try:
            self.live = {(f.kind, f.step): f for f in store.findings(run_id)}
        except Exception:  # a store gone away: what came live stays shown
            return
        if self.showing_live:
            self.show_live()

    def _show(self) -> None:
        rows = sorted(self.findings.values(), key=lambda f: (-f.rank, f.step, f.kind))
        self.table.setRowCount(len(rows))
        for row, f in enumerate(rows):
            steps = str(f.step) if f.last_step == f.step else f"{f.step}-{f.last_step}"
            figures = "\n".join(f"{k} = {v:.4g}" for k, v in f.evidence.items())
            texts = (f.severity, f.kind.replace("_", " "), steps, f.explanation, f.suggestion)
            for col, text in enumerate(texts):
                cell = QTableWidgetItem(text)
                cell.setData(Qt.UserRole, f.step)
                cell.setToolTip(f"{f.explanation}\n\nEvidence:\n{figures}")
                if col == 0:
                    cell.setBackground(QBrush(QColor(SEVERITY_COLOURS.get(f.severity, "#888"))))
                self.table.setItem(row, col, cell)
        self.table.resizeRowsToContents()
        self.summary.setText(_summary(rows))
        self.dashboard.mark_findings(rows)

    def _clicked(self, row: int, _col: int) -> None:
        step = self.table.item(row, 0).data(Qt.UserRole)
        self.dashboard.focus_step(step)
        self.sig_step_chosen.emit(step)

    def rows(self) -> list[tuple[str, str, int]]:
        """(severity, kind, start step) of each row, top to bottom (tests, the smoke run)."""
        return [
            (
                self.table.item(r, 0).text(),
                self.table.item(r, 1).text().replace(" ", "_"),
                self.table.item(r, 0).data(Qt.UserRole),
            )
            for r in range(self.table.rowCount())
        ]


def _summary(rows: list[Finding]) -> str:
    if not rows:
        return "No findings: the run doctor has seen nothing wrong."
    worst = rows[0].severity
    return f"{len(rows)} finding(s), the worst {worst}. Click one to see its step on the curves."
