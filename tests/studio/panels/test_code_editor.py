"""Typing in the reward code editor as a user does."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from studio.panels.code_editor import CodeEditor


def _editor(qtbot, text: str) -> CodeEditor:
    editor = CodeEditor()
    qtbot.addWidget(editor)
    editor.setPlainText(text)
    editor.show()
    editor.setFocus()
    return editor


def test_tab_types_spaces_to_the_next_indent(qtbot):
    editor = _editor(qtbot, "def reward(prompts, completions):\n")
    editor.moveCursor(QTextCursor.End)
    qtbot.keyClick(editor, Qt.Key_Tab)
    qtbot.keyClicks(editor, "return")
    qtbot.keyClick(editor, Qt.Key_Home)
    qtbot.keyClicks(editor, "x")  # one column in: Tab goes on to column 4
    qtbot.keyClick(editor, Qt.Key_Tab)
    assert editor.toPlainText().splitlines()[1] == "x   " + "    return"
    assert "\t" not in editor.toPlainText()
    compile(editor.toPlainText().replace("x   ", ""), "reward.py", "exec")


def test_tab_and_shift_tab_indent_and_dedent_the_selected_lines(qtbot):
    editor = _editor(qtbot, "a = 1\nb = 2\nc = 3\n")
    cursor = editor.textCursor()
    cursor.setPosition(0)
    cursor.setPosition(len("a = 1\nb"), QTextCursor.KeepAnchor)  # lines 1 and 2
    editor.setTextCursor(cursor)
    qtbot.keyClick(editor, Qt.Key_Tab)
    assert editor.toPlainText() == "    a = 1\n    b = 2\nc = 3\n"
    qtbot.keyClick(editor, Qt.Key_Backtab, Qt.ShiftModifier)
    assert editor.toPlainText() == "a = 1\nb = 2\nc = 3\n"
