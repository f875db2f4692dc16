"""Asked before a run's model is exported: which of the CLI's three forms (`rlstudio export
--format hf|gguf|adapter`), GGUF's weight type, and the folder, typed (a new one is made)
or browsed to. A new folder is made when Export is pressed (a bare name beside the
suggested one); a folder that already holds files is exported into only once the user,
told what is there, says so; the adapter form is offered only for a LoRA run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
)

from core.export_gguf import OUTTYPES

FORMATS = (
    ("hf", "Transformers folder"),
    ("gguf", "GGUF file for llama.cpp"),
    ("adapter", "LoRA adapter (peft)"),
)


@dataclass(frozen=True)
class ExportChoice:
    folder: Path
    format: str
    outtype: str


class ExportDialog(QDialog):
    def __init__(self, run_id: int, lora: bool, folder: Path, format: str = "hf", parent=None):
        super().__init__(parent)
        self.base = folder.expanduser().parent  # where a bare folder name is made
        self.setWindowTitle(f"Export run {run_id}'s model")
        form = QFormLayout(self)
        self.format = QComboBox(objectName="format")
        for key, label in FORMATS:
            self.format.addItem(label, key)
        adapter = self.format.model().item(2)
        if not lora:  # what the CLI refuses is not offered
            adapter.setEnabled(False)
            adapter.setToolTip("This run trained every weight (model.lora_r = 0): no adapter")
        self.format.setCurrentIndex(next(i for i, (k, _l) in enumerate(FORMATS) if k == format))
        form.addRow("Format", self.format)
        self.outtype = QComboBox(objectName="outtype")
        self.outtype.addItems(list(OUTTYPES))
        self.outtype.setCurrentText("f16")
        self.outtype.setToolTip("The GGUF file's weight type (llama.cpp's converter's names)")
        form.addRow("GGUF weights", self.outtype)
        self.folder = QLineEdit(str(folder), objectName="folder")
        self.folder.setToolTip("A new folder is made; one that holds files is asked about")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.problem = QLabel(wordWrap=True, objectName="problem")
        form.addRow(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok = buttons.button(QDialogButtonBox.Ok)
        self.ok.setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

    def _format_changed(self) -> None:
        self.outtype.setEnabled(self.format.currentData() == "gguf")

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Export into a folder", self.folder.text())
        if chosen:
            self.folder.setText(chosen)

    def choice(self) -> ExportChoice:
        folder = Path(self.folder.text().strip()).expanduser()
        return ExportChoice(
            folder if folder.is_absolute() else self.base / folder,
            self.format.currentData(),
            self.outtype.currentText(),
        )

    def accept(self) -> None:
        """Export only into a folder made new, an empty one, or one the user says may be
        added to; a folder that cannot be made is said so, and the dialog stays."""
        folder = self.choice().folder
        if not self.folder.text().strip():
            self.problem.setText("Name a folder to export into")
            return
        if folder.exists() and not folder.is_dir():
            self.problem.setText(f"{folder} is a file, not a folder")
            return
        if folder.is_dir() and any(folder.iterdir()) and not self._may_add_to(folder):
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.problem.setText(f"Cannot make the folder {folder}: {exc.strerror or exc}")
            return
        super().accept()

    def _may_add_to(self, folder: Path) -> bool:
        """Asks before exporting into a folder that holds files, naming them; No is the default."""
        answer = QMessageBox.question(
            self,
            "Folder not empty",
            f"{folder} already holds files: {_listing(folder)}.\n\nExport into it anyway? "
            "Files of the same name are replaced; the others stay.",
            QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No,
        )
        return answer == QMessageBox.Yes


def _listing(folder: Path, shown: int = 5) -> str:
    """The first few names in `folder` (a folder's with a slash), and how many more."""
    names = sorted(p.name + "/" * p.is_dir() for p in folder.iterdir())
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def ask_export(run_id: int, lora: bool, folder: Path, format: str, parent=None):
    """The user's ExportChoice, or None when they cancelled."""
    dialog = ExportDialog(run_id, lora, folder, format, parent)
    return dialog.choice() if dialog.exec() == QDialog.Accepted else None
