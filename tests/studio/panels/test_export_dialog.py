"""The runs browser's Export menu: the model as a transformers folder, a GGUF file or a
LoRA adapter, into a folder typed in (made new) or one that holds files (asked first)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox


def when_modal(kind, act) -> None:
    """Runs act(widget) once a modal `kind` is up (the click that opens it blocks)."""

    def poll():
        widget = QApplication.activeModalWidget()
        if isinstance(widget, kind):
            act(widget)
        else:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(20, poll)


@pytest.fixture(scope="module")
def trained_db(tmp_path_factory):
    from core.runner import start_run
    from core.store import Store
    from tests.core.helpers import tiny_config

    db = f"sqlite:///{tmp_path_factory.mktemp('export') / 'runs.db'}"
    with Store(db) as store:
        start_run(tiny_config({"training.steps": 1, "training.batch_size": 2}), store, name="x")
    return db


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
        dialog.folder.setText(str(folder))
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
            dialog.folder.setText(str(folder))

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
