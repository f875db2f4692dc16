"""The reward panel: weighted components, a Python editor for user code, and "Try it".

Built-ins are added from a menu with a weight and inline parameters (TOML, e.g.
`target = 20, unit = "words"`). User code is edited here and saved to a file
when a run starts or "Try it" is pressed: bundled examples are copied to the
user's rewards folder first, so the shipped files are never overwritten. "Try it"
turns into Cancel while it scores: cancelling stops waiting (the scores of what was
already running are dropped when they come).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.config import RewardComponentConfig
from core.data import PromptSet
from core.events import Sample
from core.lm import looks_like_path
from core.paths import assets_dir, data_dir
from core.rewards import BUILTINS, build_reward
from studio.panels.code_editor import CodeEditor
from studio.panels.elided_label import ElidedLabel
from studio.tasks import Task, run_in_background

ERROR_STYLE = "color: #d9534f;"
OK_STYLE = "color: #3c9a5f;"
_LINE = re.compile(r"\bline (\d+)")
COLUMNS = ("Kind", "Name", "Weight", "Parameters")
TRY, CANCEL = "Try it", "Cancel"
CANCELLED = "Cancelled: no longer waiting for the scores (code already running finishes unseen)"


@dataclass
class _Component:
    kind: str
    name: str
    weight: float
    params: dict[str, Any]
    code: str | None = None  # python components: the editor's text
    path: Path | None = None


def _score(components, prompts: list[str], completions: list[str], columns: dict):
    """Build the rewards, score, and stop their workers (in the "Try it" thread)."""
    with build_reward(components, tokenizer=_WordTokenizer()) as reward:
        return reward(prompts, completions, **columns), completions


def preview_rows(
    load_prompt_set: Callable[[], PromptSet], recent: list[Sample], n: int = 4
) -> list[tuple[str, str, dict]]:
    """Rows for "Try it": the prompt set's first prompts with their columns (references,
    answers...), and the newest completions on screen (else the reference itself); where
    the prompt set does not load, the newest samples alone."""
    try:
        prompt_set = load_prompt_set()
    except Exception:
        return [(s.prompt, s.completion, {}) for s in recent[-n:]]
    rows = []
    for i in range(min(n, len(prompt_set))):
        columns = {k: v[i] for k, v in prompt_set.columns.items()}
        fallback = columns.get("reference", columns.get("answer", ""))
        completion = recent[i].completion if i < len(recent) else str(fallback or "")
        prompt = prompt_set.batch([i])[0][0]  # chat messages stay messages, as in training
        rows.append((prompt, completion, columns))
    return rows


def _params_text(params: dict[str, Any]) -> str:
    import tomli_w

    return ", ".join(tomli_w.dumps({k: v}).strip() for k, v in params.items())


def _parse_params(text: str) -> dict[str, Any]:
    text = text.strip()
    return tomllib.loads(f"v = {{ {text} }}")["v"] if text else {}


def user_rewards_dir() -> Path:
    path = data_dir() / "rewards"
    path.mkdir(parents=True, exist_ok=True)
    return path


def templates() -> dict[str, Path]:
    return {p.stem: p for p in sorted((assets_dir() / "rewards").glob("*.py"))}


class RewardEditor(QWidget):
    changed = Signal()
    tried = Signal(bool)  # "Try it" finished: True scored, False showed an error

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[_Component] = []
        self._current: int | None = None  # the python component shown in the editor
        self.samples_source = None  # callable -> list[(prompt, completion, columns)]
        self.try_task: Task | None = None  # the "Try it" being waited for

        self.table = self._build_table()
        self.template = QComboBox()
        self.template.addItem("Load a template...")
        self.template.addItems(list(templates()))
        self.template.activated.connect(self._load_template)
        self.editor = CodeEditor()
        self.editor.textChanged.connect(self._code_edited)
        # a long path is shortened in its middle and never widens the dock
        self.file_label = ElidedLabel(mode=Qt.ElideMiddle)
        self.file_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.problems = QLabel()  # why the rewards cannot run, under their table
        self.problems.setWordWrap(True)
        self.problems.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.problems.setStyleSheet(ERROR_STYLE)
        self.problems.hide()
        self.changed.connect(self._show_problems)
        self.try_input = QPlainTextEdit()
        self.try_input.setPlaceholderText(
            "Completions to try, one per line (empty: samples from the run or examples)"
        )
        self.try_input.setMaximumHeight(70)
        self.try_button = QPushButton(TRY)
        self.try_button.clicked.connect(self._try_or_cancel)
        self._show_trying(False)
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.result.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # never widens
        self.result.setTextInteractionFlags(Qt.TextSelectableByMouse)

        split = QSplitter(Qt.Vertical)
        split.addWidget(self._build_components_pane())
        split.addWidget(self._build_code_pane())
        split.setSizes([120, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)
        self._show_editor(None)

    def _build_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.horizontalHeader().setSectionResizeMode(3, QHeaderView.Stretch)
        table.verticalHeader().hide()
        table.setSelectionBehavior(QTableWidget.SelectRows)
        table.itemChanged.connect(self._cell_edited)
        table.currentCellChanged.connect(lambda row, *_: self._select(row))
        return table

    def _build_components_pane(self) -> QWidget:
        """The buttons that add and remove components, above their table."""
        add_builtin = QToolButton(text="Add built-in")
        add_builtin.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(add_builtin)
        for kind in sorted(BUILTINS):
            menu.addAction(kind, lambda k=kind: self.add_component(k))
        add_builtin.setMenu(menu)
        add_python = QPushButton("Add Python reward")
        add_python.clicked.connect(lambda: self.add_component("python"))
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_current)
        buttons = QHBoxLayout()
        for w in (add_builtin, add_python, remove):
            buttons.addWidget(w)
        buttons.addStretch(1)
        pane = QWidget()
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.table)
        layout.addWidget(self.problems)
        return pane

    def _build_code_pane(self) -> QWidget:
        """The file row, the code editor, and "Try it" with its input and result."""
        open_file = QPushButton("Open .py...")
        open_file.clicked.connect(self._open_file)
        file_row = QHBoxLayout()
        file_row.addWidget(self.file_label, 1)
        file_row.addWidget(self.template)
        file_row.addWidget(open_file)
        pane = QWidget()
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(file_row)
        layout.addWidget(self.editor, 1)
        for w in (self.try_input, self.try_button, self.result):
            layout.addWidget(w)
        return pane

    # --- components ----------------------------------------------------------------

    def set_components(self, components, base_dir: str = "") -> None:
        self._current = None  # the editor's text belongs to the old list: do not store it
        self.items = []
        for c in components:
            params = dict(c.params or {})
            item = _Component(c.kind, c.name, float(c.weight), params)
            if c.kind == "python" and "path" in params:
                path = Path(params.pop("path")).expanduser()
                if not path.is_absolute() and base_dir:
                    path = Path(base_dir) / path
                item.path = path
                item.code = path.read_text(encoding="utf-8") if path.is_file() else ""
            self.items.append(item)
        self._refresh_table()
        first_python = next((i for i, c in enumerate(self.items) if c.kind == "python"), None)
        self._select(first_python if first_python is not None else 0)
        self.changed.emit()

    def add_component(self, kind: str, weight: float = 1.0) -> None:
        names = {c.name or c.kind for c in self.items}
        name = "" if kind not in names else f"{kind}_{len(self.items) + 1}"
        item = _Component(kind, name, weight, {})
        if kind == "python":
            template = templates().get("template")
            item.code = template.read_text(encoding="utf-8") if template else _MINIMAL
            item.name = name or f"my_reward_{len(self.items) + 1}"
        self.items.append(item)
        self._refresh_table()
        self.table.selectRow(len(self.items) - 1)
        self._select(len(self.items) - 1)
        self.changed.emit()

    def _remove_current(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self.items):
            self._store_editor()
            del self.items[row]
            if self._current is not None:  # keep pointing at the same python reward
                self._current = (
                    None if self._current == row else self._current - (row < self._current)
                )
            self._refresh_table()
            if self._current is not None:
                self._show_editor(self._current)
            self._select(min(row, len(self.items) - 1))
            self.changed.emit()

    def _refresh_table(self) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.items))
        for row, c in enumerate(self.items):
            kind = QTableWidgetItem(c.kind)
            kind.setFlags(kind.flags() & ~Qt.ItemIsEditable)
            params = (
                QTableWidgetItem(str(c.path or "(unsaved)"))
                if c.kind == "python"
                else QTableWidgetItem(_params_text(c.params))
            )
            if c.kind == "python":
                params.setFlags(params.flags() & ~Qt.ItemIsEditable)
            else:
                params.setToolTip('TOML, e.g. target = 20, unit = "words"')
            for col, cell in enumerate(
                (kind, QTableWidgetItem(c.name), QTableWidgetItem(f"{c.weight:g}"), params)
            ):
                self.table.setItem(row, col, cell)
        self.table.blockSignals(False)

    def _cell_edited(self, cell: QTableWidgetItem) -> None:
        c = self.items[cell.row()]
        text = cell.text()
        if cell.column() == 1:
            c.name = text.strip()
        elif cell.column() == 2:
            try:
                c.weight = float(text)
            except ValueError:
                c.weight = float("nan")  # reported by errors()
        elif cell.column() == 3 and c.kind != "python":
            try:
                c.params = _parse_params(text)
                cell.setBackground(self.table.palette().base())
                cell.setToolTip('TOML, e.g. target = 20, unit = "words"')
            except tomllib.TOMLDecodeError as exc:
                c.params = {"__invalid__": str(exc)}
                cell.setToolTip(f"Not valid TOML: {exc}")
        self.changed.emit()

    def errors(self) -> list[str]:
        """Problems the table shows before anything runs."""
        out = []
        for c in self.items:
            label = c.name or c.kind
            if "__invalid__" in c.params:
                out.append(f"reward '{label}': parameters are not valid TOML")
            if c.weight != c.weight:
                out.append(f"reward '{label}': the weight must be a number")
            missing = _missing_file(c)
            if missing:
                out.append(f"reward '{label}': {missing}")
        return out

    def _show_problems(self) -> None:
        problems = self.errors()
        self.problems.setText("\n".join(problems))
        self.problems.setVisible(bool(problems))

    def components(self, save: bool = False) -> tuple[RewardComponentConfig, ...]:
        """The config's reward components; with `save`, user code is written to its file
        first (so the run and "Try it" read what the editor shows)."""
        self._store_editor()
        out = []
        for c in self.items:
            params = dict(c.params)
            if c.kind == "python":
                if save:
                    self._save_code(c)
                params["path"] = str(c.path or user_rewards_dir() / f"{c.name or 'reward'}.py")
            out.append(RewardComponentConfig(c.kind, c.weight, c.name, params))
        return tuple(out)

    def _save_code(self, c: _Component) -> None:
        text = c.code or ""
        on_disk = c.path.read_text(encoding="utf-8") if c.path and c.path.is_file() else None
        if on_disk == text:
            return
        if c.path is None or _inside(c.path, assets_dir()):
            c.path = _free_path(user_rewards_dir(), c.name or (c.path.stem if c.path else "reward"))
        c.path.write_text(text, encoding="utf-8")
        self._refresh_table()
        self.file_label.setText(str(c.path))

    # --- the code editor -----------------------------------------------------------

    def _select(self, row: int) -> None:
        if row is None or not 0 <= row < len(self.items) or self.items[row].kind != "python":
            if self._current is not None and self._current < len(self.items):
                return  # keep showing the python code while a built-in row is selected
            self._show_editor(None)
            return
        self._store_editor()
        self._show_editor(row)

    def _store_editor(self) -> None:
        if self._current is not None and self._current < len(self.items):
            self.items[self._current].code = self.editor.toPlainText()

    def _show_editor(self, row: int | None) -> None:
        self._current = row
        enabled = row is not None
        self.editor.blockSignals(True)
        self.editor.setPlainText(self.items[row].code or "" if enabled else "")
        self.editor.blockSignals(False)
        self.editor.setEnabled(enabled)
        self.template.setEnabled(enabled)
        if enabled:
            path = self.items[row].path
            self.file_label.setText(str(path) if path else "unsaved (saved on Start / Try it)")
        else:
            self.file_label.setText("Add a Python reward to write your own code")

    def _code_edited(self) -> None:
        self._store_editor()
        self.result.clear()
        self.changed.emit()

    def _load_template(self, index: int) -> None:
        if index <= 0 or self._current is None:
            return
        path = templates()[self.template.itemText(index)]
        self.editor.setPlainText(path.read_text(encoding="utf-8"))
        self.template.setCurrentIndex(0)

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open reward file", "", "Python (*.py)")
        if not path:
            return
        if self._current is None:
            self.add_component("python")
        c = self.items[self._current]
        c.path = Path(path)
        c.name = c.name or c.path.stem
        self._show_editor(self._current)
        self.editor.setPlainText(c.path.read_text(encoding="utf-8"))
        self._refresh_table()

    # --- errors and "Try it" --------------------------------------------------------

    def show_error(
        self, message: str, lineno: int | None = None, component: str | None = None
    ) -> None:
        """Show a reward failure; the line is taken from the message when not given, and
        marked in the failing component's code (opened if another one is on screen)."""
        if lineno is None:
            m = _LINE.search(message)
            lineno = int(m.group(1)) if m else None
        self.result.setStyleSheet(ERROR_STYLE)
        self.result.setText(message)
        row = next(
            (i for i, c in enumerate(self.items) if c.kind == "python" and c.name == component),
            None,
        )
        if row is not None and row != self._current:
            self.table.selectRow(row)
            self._select(row)
        if lineno is not None and self._current is not None:
            self.editor.mark_error(lineno)

    def clear_failure(self) -> None:
        """A run's reward failure leaves with its pause (Resume, Stop): the message and the
        marked line go; a Try-it result stays."""
        if self.result.styleSheet() == ERROR_STYLE:
            self.result.clear()
            self.result.setStyleSheet("")
        self.editor.clear_error()

    def _try_or_cancel(self) -> None:
        if self.try_task is None:
            self.try_it()
        else:
            self.cancel_try()

    def _show_trying(self, trying: bool) -> None:
        self.try_button.setText(CANCEL if trying else TRY)
        self.try_button.setToolTip(
            "Stop waiting for these scores"
            if trying
            else "Score a few completions with the rewards above"
        )

    def cancel_try(self) -> None:
        """Stop waiting for "Try it"; its late answer is dropped, the editor goes on."""
        self.try_task = None
        self._show_trying(False)
        self.result.setStyleSheet("")
        self.result.setText(CANCELLED)

    def _answer(self, task: Task, show: Callable[[Any], None], value: Any) -> None:
        """Hand on the answer of the "Try it" still waited for; drop a cancelled one's."""
        if task is self.try_task:
            self.try_task = None
            self._show_trying(False)
            show(value)

    def try_it(self) -> None:
        """Score a few completions in the background (a judge model may take seconds to
        load); `tried` reports True with per-component scores, or False with the error
        and its line. Meanwhile the button cancels."""
        self.result.clear()
        self.editor.mark_error(None)
        problems = self.errors()
        if problems:
            self.show_error(problems[0])
            self.tried.emit(False)
            return
        rows = self._try_rows()
        columns: dict[str, list] = {}
        for _, _, cols in rows:
            for k, v in cols.items():
                columns.setdefault(k, []).append(v)
        columns = {k: v for k, v in columns.items() if len(v) == len(rows)}
        columns.setdefault("finished", [True] * len(rows))  # typed text counts as complete
        completions = [r[1] for r in rows]
        # No model is loaded here: one stand-in token id per word (training passes the real ids)
        columns.setdefault("completion_ids", [list(range(len(c.split()))) for c in completions])
        self.result.setStyleSheet("")
        self.result.setText("Scoring...")
        components, prompts = self.components(save=True), [r[0] for r in rows]
        task = run_in_background(
            lambda: _score(components, prompts, completions, columns),
            on_done=lambda answer: self._answer(task, self._scored, answer),
            on_error=lambda exc: self._answer(task, self._score_failed, exc),
            parent=self,
        )
        self.try_task = task
        self._show_trying(True)

    def _score_failed(self, exc: BaseException) -> None:
        self.show_error(str(exc), getattr(exc, "lineno", None), getattr(exc, "component", None))
        self.tried.emit(False)

    def _scored(self, answer) -> None:
        result, completions = answer
        lines = []
        for i, completion in enumerate(completions):
            parts = ", ".join(
                f"{k} {'n/a' if v[i] is None else format(v[i], '.3f')}"
                for k, v in result.components.items()
            )
            lines.append(f"{result.total[i]:+.3f}  ({parts})  {completion[:60]!r}")
        self.result.setStyleSheet(OK_STYLE)
        self.result.setText("\n".join(lines))
        self.tried.emit(True)

    def _try_rows(self) -> list[tuple[str, str, dict]]:
        typed = [line for line in self.try_input.toPlainText().splitlines() if line.strip()]
        source = self.samples_source() if self.samples_source else []
        if typed:
            prompt, cols = (source[0][0], source[0][2]) if source else ("", {})
            return [(prompt, t, cols) for t in typed]
        if source and any(r[1] for r in source):
            return source[:4]
        return [(p, c, {}) for p, c in _EXAMPLES]


class _WordTokenizer:
    """ "Try it" has no model loaded: token-based lengths count words instead."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()

    def __call__(self, texts, add_special_tokens: bool = False, **_):
        return {"input_ids": [t.split() for t in texts]}


def _missing_file(c: _Component) -> str:
    """The file or folder a component names that surely is not there, or "": a python
    reward's file with no code to save in its place, a judge's model path, a reward
    model's folder."""
    if c.kind == "python":
        if c.path is None or c.path.is_file():
            return ""
        if not (c.code or "").strip():
            return f"reward file not found: {c.path}"
        return "" if c.path.parent.is_dir() else f"no folder to save the code in: {c.path.parent}"
    where = c.params.get("model") if c.kind == "judge" else c.params.get("path")
    if c.kind not in ("judge", "reward_model") or not isinstance(where, str):
        return ""
    if c.kind == "judge" and not looks_like_path(where):
        return ""  # a model name (bundled, tiny-random, a hub id)
    return "" if Path(where).expanduser().exists() else f"not found: {where}"


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _free_path(folder: Path, stem: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem) or "reward"
    path, n = folder / f"{stem}.py", 2
    while path.exists():
        path, n = folder / f"{stem}_{n}.py", n + 1
    return path


_MINIMAL = "def reward(prompt, completion, **columns):\n    return float(len(completion) > 0)\n"
_EXAMPLES = (
    ("Once upon a time", " there was a happy little fox who loved the sunny meadow."),
    ("Once upon a time", " the storm destroyed everything and everyone was miserable."),
    ("What is 2 + 2?", " 4"),
)
