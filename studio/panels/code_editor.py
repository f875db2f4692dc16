"""A Python code editor: line numbers, syntax highlighting and an error-line marker."""

from __future__ import annotations

import keyword
import re

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPainter,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

INDENT = 4  # spaces per Tab, as PEP 8 and the reward templates


def _fmt(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    f = QTextCharFormat()
    f.setForeground(QColor(color))
    if bold:
        f.setFontWeight(QFont.Bold)
    f.setFontItalic(italic)
    return f


class PythonHighlighter(QSyntaxHighlighter):
    """Keywords, builtins, numbers, strings, comments and decorators; triple-quoted
    strings carry over lines through the block state."""

    def __init__(self, document) -> None:
        super().__init__(document)
        kw = r"\b(" + "|".join(keyword.kwlist + keyword.softkwlist) + r")\b"
        names = "len range float int str list dict set tuple min max sum abs print zip enumerate"
        names += " isinstance sorted any all round"
        builtins = r"\b(" + "|".join(names.split()) + r")\b"
        self.rules = [
            (re.compile(kw), _fmt("#c678dd", bold=True)),
            (re.compile(builtins), _fmt("#56b6c2")),
            (re.compile(r"\b\d+(\.\d+)?([eE][-+]?\d+)?\b"), _fmt("#d19a66")),
            (re.compile(r"@\w+"), _fmt("#e5c07b")),
            (re.compile(r"\bdef\s+(\w+)"), _fmt("#61afef", bold=True)),
            (
                re.compile(r"'[^'\\\n]*(\\.[^'\\\n]*)*'|\"[^\"\\\n]*(\\.[^\"\\\n]*)*\""),
                _fmt("#98c379"),
            ),
            (re.compile(r"#[^\n]*"), _fmt("#7f848e", italic=True)),
        ]
        self.string_format = _fmt("#98c379")

    def highlightBlock(self, text: str) -> None:
        for pattern, fmt in self.rules:
            for m in pattern.finditer(text):
                start, end = m.span(1) if pattern.pattern.startswith(r"\bdef") else m.span()
                self.setFormat(start, end - start, fmt)
        self._triple_quotes(text)

    def _triple_quotes(self, text: str) -> None:
        """State 1 or 2 = inside a ''' or \"\"\" string at the end of the block."""
        self.setCurrentBlockState(0)
        start = 0
        state = self.previousBlockState()
        while True:
            if state in (1, 2):
                delim = "'''" if state == 1 else '"""'
                end = text.find(delim, start)
                if end < 0:
                    self.setFormat(start, len(text) - start, self.string_format)
                    self.setCurrentBlockState(state)
                    return
                self.setFormat(start, end + 3 - start, self.string_format)
                start, state = end + 3, 0
            found = [(text.find(d, start), d) for d in ("'''", '"""')]
            found = [(i, d) for i, d in found if i >= 0]
            if not found:
                return
            i, d = min(found)
            start, state = i, 1 if d == "'''" else 2
            start += 3
            end = text.find(d, start)
            if end < 0:
                self.setFormat(i, len(text) - i, self.string_format)
                self.setCurrentBlockState(state)
                return
            self.setFormat(i, end + 3 - i, self.string_format)
            start, state = end + 3, 0


class _LineNumbers(QWidget):
    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event) -> None:
        self.editor.paint_gutter(event)


class CodeEditor(QPlainTextEdit):
    """Plain-text Python editing with a line-number gutter; `mark_error(line)` highlights
    a line (1-based) and moves the cursor there."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        font = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        self.setFont(font)
        self.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.setTabStopDistance(4 * self.fontMetrics().horizontalAdvance(" "))
        self.highlighter = PythonHighlighter(self.document())
        self.gutter = _LineNumbers(self)
        self.error_line: int | None = None
        self.blockCountChanged.connect(self._update_margin)
        self.updateRequest.connect(self._scroll_gutter)
        self.textChanged.connect(self.clear_error)
        self._update_margin()

    def keyPressEvent(self, event) -> None:
        """Tab indents with four spaces (a tab character would mix with the spaces of the
        templates: "inconsistent use of tabs and spaces"); Shift+Tab takes them away."""
        if event.key() == Qt.Key_Tab and not event.modifiers() & Qt.ControlModifier:
            self._indent()
        elif event.key() == Qt.Key_Backtab:
            self._dedent()
        else:
            super().keyPressEvent(event)

    def _selected_blocks(self):
        cursor = self.textCursor()
        doc = self.document()
        first = doc.findBlock(cursor.selectionStart())
        last = doc.findBlock(cursor.selectionEnd())
        if cursor.hasSelection() and cursor.selectionEnd() == last.position() and last != first:
            last = last.previous()  # a selection ending at a line's start leaves that line
        block = first
        while block.isValid():
            yield block
            if block == last:
                break
            block = block.next()

    def _indent(self) -> None:
        cursor = self.textCursor()
        if not cursor.hasSelection():
            column = cursor.positionInBlock()
            cursor.insertText(" " * (INDENT - column % INDENT))
            return
        cursor.beginEditBlock()
        for block in list(self._selected_blocks()):
            edit = QTextCursor(block)
            edit.insertText(" " * INDENT)
        cursor.endEditBlock()

    def _dedent(self) -> None:
        cursor = self.textCursor()
        cursor.beginEditBlock()
        for block in list(self._selected_blocks()):
            spaces = len(block.text()) - len(block.text().lstrip(" "))
            edit = QTextCursor(block)
            edit.movePosition(
                QTextCursor.Right, QTextCursor.KeepAnchor, min(spaces, INDENT) if spaces else 0
            )
            edit.removeSelectedText()
        cursor.endEditBlock()

    def gutter_width(self) -> int:
        digits = max(3, len(str(self.blockCount())))
        return 10 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_margin(self, *_) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _scroll_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self.gutter.scroll(0, dy)
        else:
            self.gutter.update(0, rect.y(), self.gutter.width(), rect.height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        r = self.contentsRect()
        self.gutter.setGeometry(QRect(r.left(), r.top(), self.gutter_width(), r.height()))

    def paint_gutter(self, event) -> None:
        painter = QPainter(self.gutter)
        painter.fillRect(event.rect(), self.palette().alternateBase())
        block = self.firstVisibleBlock()
        number = block.blockNumber() + 1
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        height = round(self.blockBoundingRect(block).height())
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible():
                bad = number == self.error_line
                painter.setPen(
                    QColor("#d9534f") if bad else self.palette().placeholderText().color()
                )
                painter.drawText(
                    0, top, self.gutter.width() - 4, height, Qt.AlignRight, str(number)
                )
            block = block.next()
            top += height
            number += 1

    def mark_error(self, line: int | None) -> None:
        self.error_line = line
        selections = []
        if line is not None and 1 <= line <= self.blockCount():
            sel = QTextEdit.ExtraSelection()
            sel.format.setBackground(QColor(217, 83, 79, 70))
            sel.format.setProperty(QTextFormat.FullWidthSelection, True)
            sel.cursor = QTextCursor(self.document().findBlockByNumber(line - 1))
            selections.append(sel)
            self.blockSignals(True)  # moving the cursor is not an edit
            self.setTextCursor(sel.cursor)
            self.blockSignals(False)
        self.setExtraSelections(selections)
        self.gutter.update()

    def clear_error(self) -> None:
        if self.error_line is not None:
            self.mark_error(None)
