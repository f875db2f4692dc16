"""The setup panel as a user drives it in the real window: paths checked as they are typed,
long texts that must not widen the dock, the reward settings of the form, and the
recipes' descriptions."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QPushButton

from core.config import load_config
from core.store import Store
from studio.panels.setup_panel import bundled_recipes
from tests.studio.helpers import set_field

WAIT_MS = 30_000


def _type(qtbot, field, text: str) -> None:
    """Select what the field holds and type over it, as a user does."""
    field.setFocus()
    qtbot.keyClick(field, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClicks(field, text)


def _settle() -> None:
    """Let the layouts take in new texts: each level up posts its own layout request."""
    for _ in range(20):
        QApplication.processEvents()


def test_a_missing_prompt_path_is_said_under_the_field_and_turns_start_off(window, qtbot, tmp_path):
    assert window.start_action.isEnabled()
    missing = str(tmp_path / "no_such_prompts.jsonl")
    _type(qtbot, window.setup.prompts.lineEdit(), missing)
    qtbot.waitUntil(lambda: not window.start_action.isEnabled(), timeout=WAIT_MS)
    note = window.setup.preview_note
    assert note.isVisibleTo(window) and f"prompt set not found: {missing}" in note.text()
    assert "prompt set not found" in window.config_error

    (tmp_path / "prompts.txt").write_text("Hello\nGood morning\n", encoding="utf-8")
    _type(qtbot, window.setup.prompts.lineEdit(), str(tmp_path / "prompts.txt"))
    qtbot.waitUntil(lambda: window.start_action.isEnabled(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: note.text() == "2 prompts", timeout=WAIT_MS)


def test_a_missing_model_path_turns_start_off_but_a_hub_id_does_not(window, qtbot, tmp_path):
    model = window.setup.model.lineEdit()
    note = window.setup.model_note
    _type(qtbot, model, str(tmp_path / "no_such_model.gguf"))
    qtbot.waitUntil(lambda: not window.start_action.isEnabled(), timeout=WAIT_MS)
    assert note.isVisibleTo(window) and "model path not found" in note.text()

    _type(qtbot, model, "HuggingFaceTB/SmolLM2-135M-Instruct")  # the run asks the hub
    qtbot.waitUntil(lambda: window.start_action.isEnabled(), timeout=WAIT_MS)
    assert not note.isVisibleTo(window)
    _type(qtbot, model, "tiny-random")
    qtbot.waitUntil(lambda: window.start_action.isEnabled(), timeout=WAIT_MS)


def test_long_paths_and_their_errors_do_not_widen_the_setup_dock(
    window, qtbot, tmp_path, monkeypatch
):
    window.resize(1600, 900)
    QApplication.processEvents()
    dock, before = window.docks["setup"], window.docks["setup"].width()
    deep = tmp_path.joinpath(*["a-folder-with-a-rather-long-name-for-its-prompts"] * 10)
    deep.mkdir(parents=True)
    _type(qtbot, window.setup.prompts.lineEdit(), str(deep / "missing.jsonl"))
    _type(qtbot, window.setup.model.lineEdit(), str(deep / "missing.gguf"))
    (deep / "reward.py").write_text("def reward(prompt, completion):\n    return 1.0\n")
    chosen = (str(deep / "reward.py"), "Python (*.py)")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: chosen)
    (open_py,) = [b for b in window.rewards.findChildren(QPushButton) if b.text() == "Open .py..."]
    qtbot.mouseClick(open_py, Qt.LeftButton)
    qtbot.waitUntil(lambda: "not found" in window.setup.preview_note.text(), timeout=WAIT_MS)
    window.revalidate()  # every message is up (Start's own check waits for typing to pause)
    _settle()

    assert dock.width() <= before
    assert window.width() == 1600  # the offscreen screen is 800 px: it never grew past the ask
    assert window.rewards.file_label.text() == str(deep / "reward.py")  # whole, as tooltip


def test_reward_time_limit_and_normalize_reach_the_run_start_makes(window, qtbot, db_url):
    set_field(window, "training.steps", "2")
    _type(qtbot, window.setup.form.widget_for("reward.time_limit_s"), "5")
    normalize = window.setup.form.widget_for("reward.normalize")
    assert not normalize.isChecked()
    normalize.setFocus()
    qtbot.keyClick(normalize, Qt.Key_Space)
    qtbot.waitUntil(lambda: window.config is not None and window.config.reward.normalize)

    before = window.last_run_id
    window.start_action.trigger()
    qtbot.waitUntil(lambda: window.last_run_id != before, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.live_run is None, timeout=WAIT_MS)
    with Store(db_url) as store:
        stored = store.run_config(window.last_run_id)["reward"]
    assert stored["time_limit_s"] == 5.0 and stored["normalize"] is True


def test_the_recipe_list_describes_each_recipe(window, qtbot):
    box, note = window.setup.recipe, window.setup.recipe_note
    described = {box.itemText(i): box.itemData(i, Qt.ToolTipRole) for i in range(box.count())}
    for name, path in bundled_recipes().items():
        assert described[name] == load_config(path).description != ""

    box.setFocus()
    qtbot.keyClick(box, Qt.Key_Up)  # the recipe above tiny_smoke, as the arrow key picks it
    assert box.currentText() != "tiny_smoke"
    assert note.isVisibleTo(window) and note.text() == described[box.currentText()]
    assert box.toolTip() == note.text()
