"""One end of the samples' step filter, spanning the steps the table holds.

Left at its end of that range it filters nothing and follows the steps as they
arrive; moved inside it, it holds its value. With no samples it reads "all".
"""

from __future__ import annotations

from PySide6.QtWidgets import QSpinBox, QWidget


class StepBox(QSpinBox):
    def __init__(self, last: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.last = last  # the upper end (else the lower)
        self.forget()

    def forget(self) -> None:
        """No steps yet: "all"."""
        self.blockSignals(True)
        self.setRange(0, 0)
        self.setSpecialValueText("all")
        self.blockSignals(False)

    def at_start(self) -> bool:
        return self.value() <= self.minimum()

    def at_end(self) -> bool:
        return self.value() >= self.maximum()

    def unbounded(self) -> bool:
        """At its own end of the range: it lets every step through on its side."""
        return self.at_end() if self.last else self.at_start()

    def follow(self, first: int, last: int) -> None:
        """The table now holds steps `first` to `last`. Quietly: the filter is unchanged,
        since a box at its end lets every step through and one inside keeps its value."""
        following = self.unbounded()
        self.blockSignals(True)
        self.setSpecialValueText("")
        self.setRange(first, last)
        if following:
            self.setValue(last if self.last else first)
        self.blockSignals(False)
