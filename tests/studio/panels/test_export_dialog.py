"""The runs browser's Export menu: the model as a transformers folder, a GGUF file or a
LoRA adapter, into a folder typed in (made new) or one that holds files (asked first)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from tests.studio.helpers import when_modal


@pytest.fixture(scope="module")
def trained_db(tmp_path_factory):
    from core.runner import start_run
    from core.store import Store
    from tests.core.helpers import tiny_config

    db = f"sqlite:///{tmp_path_factory.mktemp('export') / 'runs.db'}"
    with Store(db) as store:
        start_run(tiny_config({"training.steps": 1, "training.batch_size": 2}), store, name="x")
    return db


def type_folder(qtbot, dialog, text: str) -> None:
    """What a user does in the Folder field: select what is there, type over it."""
    qtbot.keyClick(dialog.folder, Qt.Key_A, Qt.ControlModifier)
    qtbot.keyClicks(dialog.folder, text)


def menu_action(view, text: str):
    return next(a for a in view.export_menu.actions() if a.text().startswith(text))


def test_export_menu_writes_gguf_then_asks_before_adding_to_that_folder(
    qtbot, tmp_path, trained_db
):
    from core.store import Store
    from studio.panels.export_dialog import ExportDialog
    from studio.panels.runs_view import RunsView

    store = Store(trained_db)
    view = RunsView(store)
    qtbot.addWidget(view)
    view.select_ids([1])
    messages: list[str] = []
    view.message.connect(messages.append)
    folder = tmp_path / "exports" / "new-folder"  # neither exists yet
    seen = {}

    def fill_gguf(dialog: ExportDialog):
        seen["format"] = dialog.format.currentData()
        seen["adapter offered"] = dialog.format.model().item(2).isEnabled()
        seen["outtype enabled"] = dialog.outtype.isEnabled()
        type_folder(qtbot, dialog, str(folder))
        dialog.outtype.setCurrentText("f32")
        qtbot.mouseClick(dialog.ok, Qt.LeftButton)

    when_modal(ExportDialog, fill_gguf)
    menu_action(view, "Model: GGUF").trigger()
    assert seen == {"format": "gguf", "adapter offered": False, "outtype enabled": True}
    qtbot.waitUntil(lambda: any(m.startswith("Exported run 1") for m in messages), timeout=240_000)
    assert [p.name for p in folder.iterdir()] == ["run-1-f32.gguf"]

    asked: list[str] = []

    def into_the_same_folder(answer):
        def act(dialog: ExportDialog):
            assert not dialog.outtype.isEnabled()  # hf: no GGUF weight type
            type_folder(qtbot, dialog, str(folder))

            def reply(box: QMessageBox):
                asked.append(box.text())
                qtbot.mouseClick(box.button(answer), Qt.LeftButton)

            when_modal(QMessageBox, reply)
            qtbot.mouseClick(dialog.ok, Qt.LeftButton)
            if dialog.isVisible():  # No: the dialog stays for another folder; cancel it
                dialog.reject()

        return act

    when_modal(ExportDialog, into_the_same_folder(QMessageBox.No))
    menu_action(view, "Model: transformers").trigger()
    assert len(asked) == 1 and "already holds files" in asked[0]
    assert [p.name for p in folder.iterdir()] == ["run-1-f32.gguf"]  # nothing written

    done = len([m for m in messages if m.startswith("Exported run 1")])
    when_modal(ExportDialog, into_the_same_folder(QMessageBox.Yes))
    menu_action(view, "Model: transformers").trigger()
    assert len(asked) == 2
    qtbot.waitUntil(
        lambda: len([m for m in messages if m.startswith("Exported run 1")]) > done,
        timeout=240_000,
    )
    assert {"config.json", "model.safetensors", "run-1-f32.gguf"} <= {
        p.name for p in folder.iterdir()
    }
    store.close()


@pytest.fixture
def dialog(qtbot, tmp_path):
    from studio.panels.export_dialog import ExportDialog

    dialog = ExportDialog(1, lora=False, folder=tmp_path / "run-1-hf")
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_a_new_folder_typed_in_is_made(qtbot, tmp_path, dialog):
    from PySide6.QtWidgets import QDialog

    folder = tmp_path / "exports" / "first try"  # neither exists
    type_folder(qtbot, dialog, str(folder))
    qtbot.mouseClick(dialog.ok, Qt.LeftButton)
    assert dialog.result() == QDialog.Accepted and not dialog.problem.text()
    assert folder.is_dir() and dialog.choice().folder == folder


def test_a_bare_name_is_made_beside_the_suggested_folder(qtbot, tmp_path, dialog):
    type_folder(qtbot, dialog, "mine")
    qtbot.mouseClick(dialog.ok, Qt.LeftButton)
    assert dialog.choice().folder == tmp_path / "mine" and (tmp_path / "mine").is_dir()


def test_a_folder_that_cannot_be_made_says_why_and_stays(qtbot, tmp_path, dialog):
    (tmp_path / "a-file").write_text("not a folder")
    type_folder(qtbot, dialog, str(tmp_path / "a-file" / "inside"))
    qtbot.mouseClick(dialog.ok, Qt.LeftButton)
    assert dialog.isVisible() and "Cannot make the folder" in dialog.problem.text()
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_a_folder_that_holds_files_is_named_and_no_writes_nothing(qtbot, tmp_path, dialog):
    from PySide6.QtWidgets import QDialog

    folder = tmp_path / "old export"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "notes.txt").write_text("keep me")
    before = sorted(p.name for p in folder.iterdir())
    type_folder(qtbot, dialog, str(folder))
    asked: list[str] = []

    def reply(answer):
        def act(box: QMessageBox):
            asked.append(box.text())
            qtbot.mouseClick(box.button(answer), Qt.LeftButton)

        return act

    when_modal(QMessageBox, reply(QMessageBox.No))
    qtbot.mouseClick(dialog.ok, Qt.LeftButton)
    assert "already holds files: checkpoints/, config.json, notes.txt." in asked[0]
    assert dialog.isVisible() and dialog.result() != QDialog.Accepted  # another folder?
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "notes.txt").read_text() == "keep me"
    when_modal(QMessageBox, reply(QMessageBox.Yes))
    qtbot.mouseClick(dialog.ok, Qt.LeftButton)
    assert len(asked) == 2 and dialog.result() == QDialog.Accepted
