"""Run setup: recipe, model, prompt set (with a preview), algorithm, and the settings form."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.config import (
    AlgorithmConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    load_config,
)
from core.data import PromptSet, bundled_prompt_sets, load_prompts
from core.lm import TINY_RANDOM
from core.paths import assets_dir, data_dir
from studio.panels.config_form import ConfigForm

DEFAULT_MODEL = ModelConfig().name
ALGORITHMS = AlgorithmConfig.__dataclass_fields__["name"].metadata["choices"]


def _config_tables() -> dict[str, type]:
    """The recipe's tables (`[training]`, ...) and their dataclasses, as `RunConfig` names them."""
    hints = typing.get_type_hints(RunConfig)
    fields = dataclasses.fields(RunConfig)
    return {f.name: hints[f.name] for f in fields if dataclasses.is_dataclass(hints[f.name])}


# An algorithm's own table (named after it, e.g. one with its own losses) follows [algorithm]
# and shows only while that algorithm is chosen; [reward] has the reward panel.
ALGORITHM_TABLES = tuple(name for name in _config_tables() if name in ALGORITHMS)
FORM_ORDER = (
    "training",
    "generation",
    "algorithm",
    *ALGORITHM_TABLES,
    "model",
    "data",
    "logging",
    "doctor",
)
SECTIONS = [(name, _config_tables()[name]) for name in FORM_ORDER]
PICKED = {"model.name", "data.prompts", "algorithm.name"}  # chosen above the form
RECENT_KEY = "recent_models"
PROCESSES_KEY = "processes"
LAST_RECIPE_KEY = "last_recipe"
PREVIEW_ROWS = 5
MINE = " (mine)"  # how the list marks the user's own recipes


def bundled_recipes() -> dict[str, Path]:
    return {p.stem: p for p in sorted((assets_dir() / "recipes").glob("*.toml"))}


def user_recipes_dir() -> Path:
    path = data_dir() / "recipes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def all_recipes() -> dict[str, Path]:
    mine = {f"{p.stem}{MINE}": p for p in sorted(user_recipes_dir().glob("*.toml"))}
    return {**bundled_recipes(), **mine}


class SetupPanel(QWidget):
    changed = Signal()
    recipe_loaded = Signal(object)  # RunConfig
    save_requested = Signal()

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.base_dir = ""
        self._loaded_path: Path | None = None
        picks = QFormLayout()
        picks.addRow("Recipe", self._build_recipe_row())
        picks.addRow("Model", self._build_model_row())
        picks.addRow("Prompts", self._build_prompts_row())
        picks.addRow("", self.preview)
        picks.addRow("", self.preview_note)
        self.algorithm = QComboBox()
        self.algorithm.addItems(list(ALGORITHMS))
        self.algorithm.currentTextChanged.connect(self._algorithm_changed)
        picks.addRow("Algorithm", self.algorithm)
        picks.addRow("Processes", self._build_processes_row())
        self.form = ConfigForm(SECTIONS, skip=PICKED)
        self.form.changed.connect(self._edited)
        layout = QVBoxLayout(self)
        layout.addLayout(picks)
        layout.addWidget(self.form, 1)

    def _build_recipe_row(self) -> QWidget:
        self.recipe = QComboBox()
        self._fill_recipes()
        self.recipe.activated.connect(self._recipe_chosen)
        open_recipe = QPushButton("Open...")
        open_recipe.clicked.connect(self._open_recipe)
        save_recipe = QPushButton("Save as...")
        save_recipe.setToolTip("Save these settings and rewards as a recipe of your own")
        save_recipe.clicked.connect(self.save_requested.emit)
        return _row(self.recipe, open_recipe, save_recipe)

    def _build_model_row(self) -> QWidget:
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setToolTip(ModelConfig.__dataclass_fields__["name"].metadata["help"])
        self._fill_models()
        self.model.currentTextChanged.connect(self._edited)
        model_folder = QPushButton("Folder...")
        model_folder.setToolTip("A Hugging Face model folder (config.json + weights)")
        model_folder.clicked.connect(self._open_model_folder)
        model_gguf = QPushButton(".gguf...")
        model_gguf.clicked.connect(self._open_gguf)
        return _row(self.model, model_folder, model_gguf)

    def _build_prompts_row(self) -> QWidget:
        """The prompt set's box and file button; its preview goes below (`self.preview`)."""
        self.prompts = QComboBox()
        self.prompts.setEditable(True)
        self.prompts.addItems(list(bundled_prompt_sets()))
        self.prompts.currentTextChanged.connect(self._prompts_changed)
        prompts_file = QPushButton("File...")
        prompts_file.setToolTip("A .jsonl, .csv or .txt file of prompts")
        prompts_file.clicked.connect(self._open_prompts)
        self.preview = QListWidget()
        self.preview.setMaximumHeight(96)
        self.preview_note = QLabel()
        return _row(self.prompts, prompts_file)

    def _build_processes_row(self) -> QWidget:
        # A launch setting, not the recipe's: the same recipe runs as 1 or N processes.
        self.processes = QSpinBox()
        self.processes.setRange(1, 64)
        self.processes.setValue(int(self.settings.value(PROCESSES_KEY, 1) or 1))
        self.processes.setToolTip(
            "Train as this many local processes through torchrun, one per GPU (data "
            "parallel); 1 trains inside the window. Several processes follow the run "
            "through the store; Stop saves a checkpoint, there is no pause."
        )
        self.processes.valueChanged.connect(self._processes_changed)
        return _row(self.processes, QLabel("(torchrun, one per GPU)"))

    # --- recipe in and out --------------------------------------------------------------

    def _fill_recipes(self) -> None:
        self.recipe.blockSignals(True)
        self.recipe.clear()
        for name, path in all_recipes().items():
            self.recipe.addItem(name, str(path))
        self.recipe.blockSignals(False)

    def _recipe_path(self) -> Path:
        return Path(self.recipe.currentData())

    def recipe_name(self) -> str:
        """The chosen recipe as the list names it ("NAME (mine)" for the user's own)."""
        return self.recipe.currentText()

    def run_label(self) -> str:
        """The recipe's name without the "(mine)" mark: what a new run is named after."""
        return self.recipe_name().removesuffix(MINE)

    def select_recipe(self, name: str) -> None:
        index = self.recipe.findText(name)
        if index >= 0:
            self.recipe.setCurrentIndex(index)

    def load_first_recipe(self, recipe: str | None, fallback: str) -> RunConfig:
        """The recipe a window opens with: `recipe` (a file, or a listed name), else the one
        used last, else `fallback`."""
        if recipe and Path(recipe).is_file():
            return self.load_recipe(Path(recipe))
        name = recipe or self.settings.value(LAST_RECIPE_KEY, fallback)
        self.select_recipe(name)
        if self.recipe_name() != name:
            self.select_recipe(fallback)
        return self.load_recipe(self._recipe_path())

    def _recipe_chosen(self, _index: int) -> None:
        try:
            self.load_recipe(self._recipe_path())
        except ConfigError as exc:  # a broken recipe of the user's: say so, keep the old one
            self.preview_note.setText(str(exc))
            self.preview_note.setStyleSheet("color: #d9534f;")
            if self._loaded_path is not None:
                self.recipe.setCurrentIndex(self.recipe.findData(str(self._loaded_path)))

    def load_recipe(self, path: Path) -> RunConfig:
        cfg = load_config(path)
        index = self.recipe.findData(str(path))
        if index < 0:  # a file from elsewhere: list it so the box says what is loaded
            self.recipe.addItem(Path(path).stem, str(path))
            index = self.recipe.count() - 1
        self.recipe.setCurrentIndex(index)
        self._loaded_path = Path(path)
        self.show_config(cfg)
        self.settings.setValue(LAST_RECIPE_KEY, self.recipe_name())
        self.recipe_loaded.emit(cfg)
        return cfg

    def show_config(self, cfg: RunConfig) -> None:
        from core.config import to_dict

        self.base_dir = cfg.base_dir
        for w in (self.model, self.prompts, self.algorithm):
            w.blockSignals(True)
        self.model.setCurrentText(cfg.model.name)
        self.prompts.setCurrentText(cfg.data.prompts)
        self.algorithm.setCurrentText(cfg.algorithm.name)
        for w in (self.model, self.prompts, self.algorithm):
            w.blockSignals(False)
        self.form.set_values(to_dict(cfg))
        self._algorithm_changed(cfg.algorithm.name)
        self._prompts_changed(cfg.data.prompts)

    def merged(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """`to_dict(config)` data with this panel's picks and form values written in."""
        data, errors = self.form.merged(data)
        data["model"]["name"] = self.model.currentText().strip()
        data["data"]["prompts"] = self.prompts.currentText().strip()
        data["algorithm"]["name"] = self.algorithm.currentText()
        return data, errors

    def _open_recipe(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open recipe", "", "Recipe (*.toml)")
        if path:
            try:
                self.load_recipe(Path(path))
            except ConfigError as exc:
                self.preview_note.setText(str(exc))

    def ask_recipe_path(self) -> Path | None:
        """Where to save the settings as a recipe of the user's own (None: cancelled)."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Save recipe", str(user_recipes_dir() / "my_recipe.toml"), "Recipe (*.toml)"
        )
        return Path(path) if path else None

    def refresh_recipes(self) -> None:
        self._fill_recipes()

    # --- model ----------------------------------------------------------------------

    def _fill_models(self) -> None:
        recent = [m for m in self.recent_models() if m not in (DEFAULT_MODEL, TINY_RANDOM)]
        self.model.addItems([DEFAULT_MODEL, TINY_RANDOM, *recent])

    def recent_models(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        return [value] if isinstance(value, str) else list(value or [])

    def remember_model(self, name: str) -> None:
        if name in (DEFAULT_MODEL, TINY_RANDOM):
            return
        recent = [name, *[m for m in self.recent_models() if m != name]][:8]
        self.settings.setValue(RECENT_KEY, recent)

    def _open_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a model folder")
        if path:
            self.model.setCurrentText(path)

    def _open_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", "", "GGUF (*.gguf)")
        if path:
            self.model.setCurrentText(path)

    # --- prompts --------------------------------------------------------------------

    def _open_prompts(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open prompts", "", "Prompts (*.jsonl *.csv *.txt)"
        )
        if path:
            self.prompts.setCurrentText(path)

    def _prompts_changed(self, text: str) -> None:
        self.preview.clear()
        cfg = dataclasses.replace(DataConfig(), prompts=text.strip())
        try:
            prompt_set = load_prompts(cfg, self.base_dir)
        except Exception as exc:  # a wrong path or a bad file: say so, start stays off
            self.preview_note.setText(str(exc))
            self.preview_note.setStyleSheet("color: #d9534f;")
        else:
            for p in prompt_set.prompts[:PREVIEW_ROWS]:
                self.preview.addItem(" ".join(p.split())[:200])
            extra = f"; columns: {', '.join(prompt_set.columns)}" if prompt_set.columns else ""
            self.preview_note.setText(f"{len(prompt_set)} prompts{extra}")
            self.preview_note.setStyleSheet("")
        self._edited()

    def prompt_set(self) -> PromptSet:
        """The chosen prompt set, loaded (raises where it does not load)."""
        return load_prompts(DataConfig(prompts=self.prompts.currentText().strip()), self.base_dir)

    def processes_wanted(self) -> int:
        """How many local processes Start launches (1: trains inside the window)."""
        return self.processes.value()

    def _processes_changed(self, n: int) -> None:
        self.settings.setValue(PROCESSES_KEY, n)
        self._edited()

    def _algorithm_changed(self, name: str) -> None:
        for table in ALGORITHM_TABLES:
            self.form.groups[table].setVisible(name == table)
        self._edited()

    def _edited(self, *_: Any) -> None:
        self.changed.emit()


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(widgets[0], 1)
    for w in widgets[1:]:
        layout.addWidget(w)
    return box
