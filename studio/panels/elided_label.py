"""A one-line label that never asks for more width than its panel has.

A plain QLabel asks for its whole text's width, so one long hover read-out can
push the window past the screen; this one elides with "…" and keeps the full
text in its tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """Shows as much of its text as fits; the full text is `full_text` and the tooltip."""

    def __init__(
        self, text: str = "", parent: QWidget | None = None, mode: Qt.TextElideMode = Qt.ElideRight
    ) -> None:
        super().__init__(parent)
        self.full_text = ""
        self.mode = mode  # a file path reads best with its middle elided
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.setText(text)

    def setText(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(text)
        self._elide()
        self.updateGeometry()

    def text(self) -> str:
        """The whole text, not the shortened one on screen."""
        return self.full_text

    def clear(self) -> None:
        self.setText("")

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self.full_text) + 4
        return QSize(width + margins.left() + margins.right(), super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = self.contentsRect().width()
        one_line = " ".join(self.full_text.split())  # a message's line breaks would wrap it
        QLabel.setText(self, self.fontMetrics().elidedText(one_line, self.mode, room))
