"""The reward panel."""

from __future__ import annotations


def test_a_reward_error_is_marked_in_the_failing_components_code(qtbot, tmp_path):
    from core.config import RewardComponentConfig
    from studio.panels.reward_editor import RewardEditor

    for name, body in (("first", "return 1.0"), ("second", "return 2.0")):
        code = f"def reward(prompt, completion):\n    x = 1\n    {body}\n"
        (tmp_path / f"{name}.py").write_text(code)
    editor = RewardEditor()
    qtbot.addWidget(editor)
    editor.set_components(
        [
            RewardComponentConfig("python", 1.0, n, {"path": str(tmp_path / f"{n}.py")})
            for n in ("first", "second")
        ]
    )
    editor.table.selectRow(1)
    assert "2.0" in editor.editor.toPlainText()
    editor.show_error("reward 'first': first.py line 3: ZeroDivisionError", 3, "first")
    assert "1.0" in editor.editor.toPlainText()  # the failing reward's code is on screen
    assert editor.editor.error_line == 3
    assert editor.editor.textCursor().blockNumber() == 2
