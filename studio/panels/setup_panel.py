"""Run setup: recipe, model, prompt set (with a preview), algorithm, and the settings form."""

from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
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
    read_recipe_file,
)
from core.data import PromptSet
from core.lm import TINY_RANDOM, missing_model_path
from core.paths import assets_dir, data_dir
from studio.panels.config_form import ConfigForm
from studio.panels.live_form import LiveHold
from studio.panels.prompt_picker import PromptPicker

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
    "reward",
    "model",
    "data",
    "logging",
    "doctor",
)
SECTIONS = [(name, _config_tables()[name]) for name in FORM_ORDER]
PICKED = {"model.name", "data.prompts", "algorithm.name"}  # chosen above the form
NOT_IN_FORM = PICKED | {"reward.components"}  # the components: the reward panel
RECENT_KEY = "recent_models"
PROCESSES_KEY = "processes"
LAST_RECIPE_KEY = "last_recipe"
MINE = " (mine)"  # how the list marks the user's own recipes
TYPING_MS = 300  # a typed path is checked once typing pauses this long
ERROR_STYLE = "color: #d9534f;"
NOTE_STYLE = "color: gray;"


def bundled_recipes() -> dict[str, Path]:
    return {p.stem: p for p in sorted((assets_dir() / "recipes").glob("*.toml"))}


def user_recipes_dir() -> Path:
    path = data_dir() / "recipes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def recipe_description(path: Path) -> str:
    """The recipe's `description` line ("" where it has none or does not read)."""
    try:
        text = read_recipe_file(path).get("description", "")
    except (ConfigError, OSError):
        return ""  # a broken recipe says why when it is chosen
    return text if isinstance(text, str) else ""


def model_problem(name: str) -> str:
    """Why `name` surely names no model, or "" (core's check: a path that does not exist)."""
    return missing_model_path(name) if name else "model.name: choose a model"


def all_recipes() -> dict[str, Path]:
    folder = user_recipes_dir()
    files = sorted(p for pattern in ("*.toml", "*.yaml", "*.yml") for p in folder.glob(pattern))
    mine = {f"{p.stem}{MINE}": p for p in files}
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
        picks.addRow("", self.recipe_note)
        picks.addRow("Model", self._build_model_row())
        picks.addRow("", self.model_note)
        picks.addRow("Prompts", self._build_prompts_row())
        picks.addRow("", self.preview_note)  # under the field: how many prompts, or why none
        picks.addRow("", self.preview)
        self.algorithm = QComboBox()
        self.algorithm.addItems(list(ALGORITHMS))
        self.algorithm.currentTextChanged.connect(self._algorithm_changed)
        picks.addRow("Algorithm", self.algorithm)
        picks.addRow("Processes", self._build_processes_row())
        self.form = ConfigForm(SECTIONS, skip=NOT_IN_FORM)
        self.form.changed.connect(self._edited)
        self.form.changed.connect(self._data_settings_edited)
        self._read_with = self._data_settings()
        layout = QVBoxLayout(self)
        layout.addLayout(picks)
        layout.addWidget(self.form, 1)

    def _build_recipe_row(self) -> QWidget:
        self.recipe = _combo()
        self.recipe_note = _note(NOTE_STYLE)  # the chosen recipe's description
        self._fill_recipes()
        self.recipe.activated.connect(self._recipe_chosen)
        open_recipe = QPushButton("Open...")
        open_recipe.clicked.connect(self._open_recipe)
        save_recipe = QPushButton("Save as...")
        save_recipe.setToolTip("Save these settings and rewards as a recipe of your own")
        save_recipe.clicked.connect(self.save_requested.emit)
        return _row(self.recipe, open_recipe, save_recipe)

    def _build_model_row(self) -> QWidget:
        self.model = _combo(editable=True)
        self.model.setToolTip(ModelConfig.__dataclass_fields__["name"].metadata["help"])
        self.model_note = _note(ERROR_STYLE)  # why the typed model cannot load
        self.model_note.hide()
        self._fill_models()
        self._model_typing = QTimer(self, singleShot=True, interval=TYPING_MS)
        self._model_typing.timeout.connect(self.check_model)
        self.model.currentTextChanged.connect(self._model_typing.start)
        self.model.currentTextChanged.connect(self._edited)
        model_folder = QPushButton("Folder...")
        model_folder.setToolTip("A Hugging Face model folder (config.json + weights)")
        model_folder.clicked.connect(self._open_model_folder)
        model_gguf = QPushButton(".gguf...")
        model_gguf.clicked.connect(self._open_gguf)
        return _row(self.model, model_folder, model_gguf)

    def _build_prompts_row(self) -> QWidget:
        """The prompt set's picker; its preview goes below (`self.preview`)."""
        self.picker = PromptPicker(self._data_config)
        _keep_narrow(self.picker.box)  # a long typed path must not widen the panel
        self.picker.sig_changed.connect(self._edited)
        self.prompts, self.preview, self.preview_note = (
            self.picker.box,
            self.picker.preview,
            self.picker.note,
        )
        return self.picker

    def _data_settings(self) -> tuple[str, str]:
        cfg = self._data_config("")
        return cfg.split, cfg.prompt_column

    def _data_settings_edited(self) -> None:
        """A new data.split or data.prompt_column reads the prompts anew: preview them again."""
        now = self._data_settings()
        if now != self._read_with:
            self._read_with = now
            self.picker.refresh()

    def _data_config(self, prompts: str) -> DataConfig:
        """The data settings a choice of prompts is read with (the form's split, column)."""
        values, _errors = self.form.merged({"data": {}})
        keep = {k: v for k, v in values.get("data", {}).items() if k in ("prompt_column", "split")}
        return DataConfig(prompts=prompts, **keep)

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
            self._add_recipe(name, path)
        self.recipe.blockSignals(False)

    def _add_recipe(self, name: str, path: Path) -> None:
        self.recipe.addItem(name, str(path))
        self.recipe.setItemData(self.recipe.count() - 1, recipe_description(path), Qt.ToolTipRole)

    def _show_description(self) -> None:
        text = self.recipe.itemData(self.recipe.currentIndex(), Qt.ToolTipRole) or ""
        self.recipe_note.setText(text)
        self.recipe_note.setVisible(bool(text))
        self.recipe.setToolTip(text)

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
            self.picker.say_error(str(exc))
            if self._loaded_path is not None:
                self.recipe.setCurrentIndex(self.recipe.findData(str(self._loaded_path)))

    def load_recipe(self, path: Path) -> RunConfig:
        cfg = load_config(path)
        index = self.recipe.findData(str(path))
        if index < 0:  # a file from elsewhere: list it so the box says what is loaded
            self._add_recipe(Path(path).stem, Path(path))
            index = self.recipe.count() - 1
        self.recipe.setCurrentIndex(index)
        self._show_description()
        self._loaded_path = Path(path)
        self.show_config(cfg)
        self.settings.setValue(LAST_RECIPE_KEY, self.recipe_name())
        self.recipe_loaded.emit(cfg)
        return cfg

    def show_config(self, cfg: RunConfig) -> None:
        from core.config import to_dict

        self.base_dir = cfg.base_dir
        for w in (self.model, self.algorithm):
            w.blockSignals(True)
        self.model.setCurrentText(cfg.model.name)
        self.algorithm.setCurrentText(cfg.algorithm.name)
        for w in (self.model, self.algorithm):
            w.blockSignals(False)
        self.form.set_values(to_dict(cfg))
        self._algorithm_changed(cfg.algorithm.name)
        self._read_with = self._data_settings()
        self.picker.show_choice(cfg.data.prompts, cfg.base_dir)
        self._edited()

    def merged(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """`to_dict(config)` data with this panel's picks and form values written in."""
        data, errors = self.form.merged(data)
        data["model"]["name"] = self.model.currentText().strip()
        data["data"]["prompts"] = self.prompts.currentText().strip()
        data["algorithm"]["name"] = self.algorithm.currentText()
        self.picker.flush()  # its note says the same as the error below
        for key, problem in (
            ("model.name", self.check_model()),
            ("data.prompts", self.picker.problem()),
        ):
            if problem:
                errors[key] = problem
        return data, errors

    def check_model(self) -> str:
        """Say under the model field why it cannot load ("" and hidden: it may)."""
        problem = model_problem(self.model.currentText().strip())
        self.model_note.setText(problem)
        self.model_note.setVisible(bool(problem))
        return problem

    # --- while a run trains ------------------------------------------------------------

    @functools.cached_property
    def live_hold(self) -> LiveHold:
        """Only the settings a live run can take stay editable (see `live_form`)."""
        rows = (self.recipe, self.model, self.processes)  # each with its buttons
        return LiveHold(self.form, [*(w.parentWidget() for w in rows), self.picker, self.algorithm])

    def hold_for_live_run(self, run) -> None:
        """`run`: the `studio.live.LiveRun` training now, or None."""
        self.live_hold.hold(run is not None, run is not None and run.can_pause)

    def _open_recipe(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open recipe", "", "Recipe (*.toml *.yaml *.yml)"
        )
        if path:
            try:
                self.load_recipe(Path(path))
            except ConfigError as exc:
                self.picker.say_error(str(exc))

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

    def prompt_set(self) -> PromptSet:
        """The chosen prompt set, loaded (raises where it does not load)."""
        return self.picker.prompt_set()

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


def _combo(editable: bool = False) -> QComboBox:
    box = QComboBox()
    box.setEditable(editable)
    _keep_narrow(box)
    return box


def _keep_narrow(box: QComboBox) -> None:
    """Size the box by a few characters, not by its longest entry (a long path)."""
    box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(12)


def _note(style: str) -> QLabel:
    """A message under a field: it wraps within the panel, never widens it."""
    label = QLabel()
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # its width is the panel's
    label.setStyleSheet(style)
    return label


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(widgets[0], 1)
    for w in widgets[1:]:
        layout.addWidget(w)
    return box
