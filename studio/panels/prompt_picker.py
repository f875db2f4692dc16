"""The prompt set picker: a bundled name, a file (.jsonl, .json, .csv, .txt, .parquet) or a
folder saved with `datasets`' `save_to_disk`, and a preview of its first prompts.

The preview loads off the GUI thread (`run_in_background`): a parquet file or a saved
folder imports `datasets` the first time, which takes seconds. Only the answer for the
latest choice is shown, so typing a path never shows an older one's prompts. A typed path
is read once typing pauses; one that does not exist is said at once, without a load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from core.config import DataConfig
from core.data import PromptSet, bundled_prompt_sets, load_prompts, prompt_source
from core.data_sources import DataError
from studio.tasks import run_in_background

PREVIEW_ROWS = 5
FILE_FILTER = "Prompts (*.jsonl *.json *.csv *.txt *.parquet);;All files (*)"
ERROR_STYLE = "color: #d9534f;"
TYPING_MS = 300  # a typed path is checked once typing pauses this long


class PromptPicker(QWidget):
    """The prompts row (`box`, File..., Folder...); `preview` and `note` go below it."""

    sig_changed = Signal()
    """The chosen prompt set changed (typed, picked, or loaded with a recipe), or turned
    out not to load."""
    sig_previewed = Signal()
    """The preview now shows the latest choice (its prompts, or why it does not load)."""

    def __init__(self, data_config: Callable[[str], DataConfig], parent=None) -> None:
        super().__init__(parent)
        self.data_config = data_config  # the form's data settings (split, column) for a choice
        self.base_dir = ""
        self.box = QComboBox()
        self.box.setEditable(True)
        self.box.addItems(list(bundled_prompt_sets()))
        self.box.currentTextChanged.connect(self._chosen)
        self.box.setToolTip(DataConfig.__dataclass_fields__["prompts"].metadata["help"])
        open_file = QPushButton("File...")
        open_file.setToolTip("A .jsonl, .json, .csv, .txt or .parquet file of prompts")
        open_file.clicked.connect(self._open_file)
        open_folder = QPushButton("Folder...")
        open_folder.setToolTip("A folder saved with datasets' Dataset.save_to_disk")
        open_folder.clicked.connect(self._open_folder)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.box, open_file, open_folder):
            layout.addWidget(w)
        self.preview = QListWidget()
        self.preview.setMaximumHeight(96)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # never widens
        self._latest = 0  # the number of the latest choice; older answers are dropped
        self._failure: tuple[DataConfig, str] | None = None  # (choice, why it did not load)
        self._typing = QTimer(self, singleShot=True, interval=TYPING_MS)
        self._typing.timeout.connect(self.refresh)

    def text(self) -> str:
        return self.box.currentText().strip()

    def show_choice(self, prompts: str, base_dir: str) -> None:
        """Show a recipe's prompt set (relative paths read against `base_dir`)."""
        self.base_dir = base_dir
        self.box.blockSignals(True)
        self.box.setCurrentText(prompts)
        self.box.blockSignals(False)
        self.refresh()

    def prompt_set(self) -> PromptSet:
        """The chosen prompt set, loaded here (raises where it does not load)."""
        return load_prompts(self.data_config(self.text()), self.base_dir)

    def problem(self) -> str:
        """Why the choice surely cannot be used, or "": no such file or folder (checked
        now), or the reason this very choice did not load in the preview."""
        if not self.text():
            return "data.prompts: choose a prompt set"
        cfg = self.data_config(self.text())
        try:
            prompt_source(cfg, self.base_dir)
        except DataError as exc:
            return str(exc)
        failed = self._failure
        return failed[1] if failed is not None and failed[0] == cfg else ""

    def flush(self) -> None:
        """Read a typed choice now, not when typing pauses (the settings are checked)."""
        if self._typing.isActive():
            self.refresh()

    def refresh(self) -> None:
        """Load the choice again, in the background, and preview it."""
        self._typing.stop()
        self._latest += 1
        number, cfg, base_dir = self._latest, self.data_config(self.text()), self.base_dir
        self.preview.clear()
        self._failure = None
        missing = self.problem()
        if missing:  # nothing there to load: say so at once
            self._failed(number, cfg, DataError(missing))
            return
        self.note.setText("loading...")
        self.note.setStyleSheet("")
        run_in_background(
            lambda: load_prompts(cfg, base_dir),
            on_done=lambda prompt_set: self._show(number, prompt_set),
            on_error=lambda exc: self._failed(number, cfg, exc),
            parent=self,
        )

    def _chosen(self, _text: str) -> None:
        self._typing.start()
        self.sig_changed.emit()

    def _show(self, number: int, prompt_set: PromptSet) -> None:
        if number != self._latest:
            return
        for p in prompt_set.prompts[:PREVIEW_ROWS]:
            self.preview.addItem(" ".join(p.split())[:200])
        kind = " (chat messages)" if prompt_set.chats is not None else ""
        extra = f"; columns: {', '.join(prompt_set.columns)}" if prompt_set.columns else ""
        self.note.setText(f"{len(prompt_set)} prompts{kind}{extra}")
        self.sig_previewed.emit()

    def _failed(self, number: int, cfg: DataConfig, exc: BaseException) -> None:
        if number != self._latest:
            return
        self._failure = (cfg, str(exc))
        self.say_error(str(exc))  # a wrong path or a bad file: say so, start stays off
        self.sig_previewed.emit()
        self.sig_changed.emit()

    def say_error(self, text: str) -> None:
        self.note.setText(text)
        self.note.setStyleSheet(ERROR_STYLE)

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open prompts", "", FILE_FILTER)
        if path:
            self.box.setCurrentText(path)

    def _open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a saved dataset folder")
        if path:
            self.box.setCurrentText(str(Path(path)))
