"""The setup panel's prompt picker as a user drives it in the real window: a folder saved
with `datasets` (chat prompts, a DatasetDict whose split the form picks), a parquet file,
and a folder that is not a saved data set."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QPushButton

from tests.studio.helpers import set_field

WAIT_MS = 30_000


def _button(window, text: str) -> QPushButton:
    (button,) = [b for b in window.setup.picker.findChildren(QPushButton) if b.text() == text]
    return button


def _previewed(window) -> list[str]:
    preview = window.setup.preview
    return [preview.item(i).text() for i in range(preview.count())]


def test_the_picker_previews_saved_folders_and_parquet_files(window, qtbot, tmp_path, monkeypatch):
    import datasets

    def chat(question: str) -> list[dict]:
        return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]

    train = datasets.Dataset.from_list(
        [
            {"prompt": chat(q), "solution": a}
            for q, a in (("2+2?", "4"), ("3+3?", "6"), ("1+1?", "2"))
        ]
    )
    test = datasets.Dataset.from_list([{"prompt": chat("9+9?"), "solution": "18"}])
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "maths"))
    datasets.Dataset.from_list([{"prompt": "Hello", "n": 1}, {"prompt": "Bye", "n": 2}]).to_parquet(
        str(tmp_path / "two.parquet")
    )
    note = window.setup.preview_note

    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "maths")
    )
    qtbot.mouseClick(_button(window, "Folder..."), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: note.text().startswith("3 prompts"), timeout=WAIT_MS)
    assert note.text() == "3 prompts (chat messages); columns: solution"
    assert _previewed(window)[0] == "system: Be brief. user: 2+2?"
    assert window.setup.prompts.currentText() == str(tmp_path / "maths")

    set_field(window, "data.split", "test")  # the form's split reads the other part
    qtbot.waitUntil(lambda: note.text().startswith("1 prompts"), timeout=WAIT_MS)
    assert _previewed(window) == ["system: Be brief. user: 9+9?"]
    set_field(window, "data.split", "train")

    chosen = (str(tmp_path / "two.parquet"), "Prompts")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: chosen)
    qtbot.mouseClick(_button(window, "File..."), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: note.text().startswith("2 prompts"), timeout=WAIT_MS)
    assert note.text() == "2 prompts; columns: n" and _previewed(window) == ["Hello", "Bye"]

    (tmp_path / "plain").mkdir()
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "plain")
    )
    qtbot.mouseClick(_button(window, "Folder..."), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "save_to_disk" in note.text(), timeout=WAIT_MS)
    assert "not one saved with Dataset.save_to_disk" in note.text() and _previewed(window) == []
    assert "d9534f" in note.styleSheet()
