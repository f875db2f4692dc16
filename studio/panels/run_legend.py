"""Which colour is which run, when the dashboard compares several: one short entry per
run above the plots (its id and name, elided), the full label in the entry's tooltip.
The plots' own legends then only name the metrics."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from studio.panels.elided_label import ElidedLabel

ENTRY_MAX_WIDTH = 220


class RunLegend(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: list[ElidedLabel] = []
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(4, 0, 4, 0)
        self.hide()

    def show_runs(self, runs: list[tuple[str, str, str]]) -> None:
        """(colour, short label, full label) per run; none hides the legend."""
        while self._layout.count():
            widget = self._layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.entries = []
        for colour, short, full in runs:
            swatch = QLabel(f"<span style='color:{colour}; font-weight:bold'>━━</span>")
            swatch.setToolTip(full)
            entry = ElidedLabel(short)
            entry.setToolTip(full)
            entry.setMaximumWidth(ENTRY_MAX_WIDTH)
            self._layout.addWidget(swatch)
            self._layout.addWidget(entry)
            self.entries.append(entry)
        self._layout.addStretch(1)
        self.setVisible(bool(runs))
