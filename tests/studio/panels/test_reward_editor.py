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


def test_try_it_can_be_cancelled_and_the_editor_goes_on(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from core.config import RewardComponentConfig
    from studio.panels.reward_editor import RewardEditor

    go = tmp_path / "go"  # the slow reward waits for this file: no race with the clicks
    code = (
        "import pathlib, time\n\ndef reward(prompt, completion):\n"
        f"    while not pathlib.Path({str(go)!r}).exists():\n        time.sleep(0.05)\n"
        "    return 1.0\n"
    )
    (tmp_path / "slow.py").write_text(code)
    editor = RewardEditor()
    qtbot.addWidget(editor)
    editor.show()
    editor.set_components(
        [RewardComponentConfig("python", 1.0, "slow", {"path": str(tmp_path / "slow.py")})]
    )
    button = editor.try_button
    qtbot.mouseClick(button, Qt.LeftButton)
    assert button.text() == "Cancel" and editor.result.text() == "Scoring..."
    cancelled = editor.try_task
    qtbot.mouseClick(button, Qt.LeftButton)
    assert button.text() == "Try it" and editor.result.text().startswith("Cancelled")

    editor.editor.setFocus()  # the editor goes on: new code, tried at once
    qtbot.keyClick(editor.editor, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClicks(editor.editor, "def reward(prompt, completion): return 2.0")
    with qtbot.waitSignal(editor.tried, timeout=30_000) as tried:
        qtbot.mouseClick(button, Qt.LeftButton)
    assert tried.args == [True] and "+2.000" in editor.result.text()

    go.write_text("")  # the cancelled call ends; its late scores are dropped
    assert cancelled.wait(30)
    cancelled.drain()
    assert "+2.000" in editor.result.text() and "+1.000" not in editor.result.text()
    assert button.text() == "Try it"


def test_a_recipe_whose_reward_file_is_gone_cannot_start_until_code_is_written(
    window, qtbot, tmp_path, monkeypatch
):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog, QPushButton

    from tests.core.helpers import TINY_RECIPE

    recipe = tmp_path / "gone.toml"
    text = TINY_RECIPE.read_text().replace("../rewards/letter_e.py", "gone.py")
    recipe.write_text(
        text.replace("tiny_smoke_prompt.txt", str(TINY_RECIPE.parent / "tiny_smoke_prompt.txt"))
    )
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(recipe), ""))
    (open_recipe,) = [b for b in window.setup.findChildren(QPushButton) if b.text() == "Open..."]
    qtbot.mouseClick(open_recipe, Qt.LeftButton)
    window.docks["reward"].raise_()
    problems = window.rewards.problems
    assert problems.isVisibleTo(window) and "reward file not found" in problems.text()
    assert not window.start_action.isEnabled()
    assert "reward file not found" in window.config_error

    window.rewards.editor.setFocus()
    qtbot.keyClicks(window.rewards.editor, "def reward(prompt, completion): return 1.0")
    qtbot.waitUntil(lambda: window.start_action.isEnabled(), timeout=10_000)
    assert not problems.isVisibleTo(window)
