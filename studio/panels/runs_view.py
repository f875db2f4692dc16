"""The runs browser: every run in the store, to open, compare, rename, delete and export."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core import USER_ERRORS, delete_run, export_metrics, export_run_model, export_samples
from core.events import SEVERITIES
from core.store import RunInfo, Store, error_reason
from studio.panels.export_dialog import ask_export
from studio.panels.finding_marks import SEVERITY_COLOURS
from studio.panels.resume_dialog import ask_how_to_resume
from studio.tasks import Task, run_in_background

COLUMNS = (
    "ID",
    "Name",
    "Status",
    "Algorithm",
    "Model",
    "Steps",
    "Last reward",
    "Started",
    "Duration",
    "Health",  # the worst of the run doctor's findings
)
REFRESH_MS = 3000


def _duration(info: RunInfo) -> str:
    """The time it trained (not the days it sat stopped before a resume)."""
    if info.training_seconds is None:
        return ""
    seconds = max(0, int(info.training_seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def _what_is_lost(store: Store, ids: list[int]) -> str:
    """What deleting `ids` takes, the first five: run 3 'name' (40 steps, 3 checkpoints)."""
    shown = []
    for run_id in ids[:5]:
        info, saved = store.run(run_id), len(store.checkpoints(run_id))
        steps = max(info.last_step, 0)
        shown.append(
            f"run {run_id} {info.name!r} ({steps} step{'s' * (steps != 1)}, "
            f"{saved} checkpoint{'s' * (saved != 1)})"
        )
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return ", ".join(shown) + more


class _Item(QTableWidgetItem):
    """Sorts by the value it was made from, not its text."""

    def __init__(self, text: str, key) -> None:
        super().__init__(text)
        self.key = key

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.key, getattr(other, "key", other.text())
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


def _health_item(severity: str) -> _Item:
    """The badge: the worst finding's severity, in its colour (sorted by how bad)."""
    item = _Item(severity, SEVERITIES.index(severity) if severity else -1)
    if severity:
        item.setBackground(QBrush(QColor(SEVERITY_COLOURS[severity])))
        item.setToolTip(f"The run doctor's worst finding is {severity}: open the run, see Health")
    return item


class RunsView(QWidget):
    open_requested = Signal(int)
    compare_requested = Signal(list)
    resume_requested = Signal(int, object)  # the run, a ResumeChoice
    message = Signal(str)
    # False and the reason when the store stops answering, True when it answers again
    connection = Signal(bool, str)

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.live_run_id: int | None = None
        self.connection_lost = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.table.setEditTriggers(
            QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed
        )
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.setSortingEnabled(True)
        self.table.itemChanged.connect(self._renamed)
        self.table.cellDoubleClicked.connect(self._double_clicked)
        self._add_row_actions()

        buttons = {
            "Open": self._open,
            "Compare": self._compare,
            "Resume": self._resume,
            "Delete": self._delete,
            "Refresh": self.refresh,
        }
        bar = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for label, slot in buttons.items():
            b = QPushButton(label)
            # clicked(bool) would hand its `checked` flag to the slot's first parameter
            b.clicked.connect(lambda _checked=False, slot=slot: slot())
            self.buttons[label] = b
            bar.addWidget(b)
        self.buttons["Compare"].setToolTip("Overlay the curves of the selected runs")
        export = QToolButton(text="Export")
        export.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(export)
        menu.addAction("Metrics (CSV / JSON)...", lambda: self._export("metrics"))
        menu.addAction("Samples (CSV / JSON)...", lambda: self._export("samples"))
        menu.addAction("Model: transformers folder...", lambda: self._export_model("hf"))
        menu.addAction("Model: GGUF file for llama.cpp...", lambda: self._export_model("gguf"))
        menu.addAction("Model: LoRA adapter...", lambda: self._export_model("adapter"))
        self.export_menu = menu
        export.setMenu(menu)
        bar.addWidget(export)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.table)

        self._reading: Task | None = None  # one background read at a time
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self._refresh_if_visible)
        self._timer.start()
        self.refresh()

    def _add_row_actions(self) -> None:
        """The list's right-click menu; its Delete is the Delete key too (and asks first)."""
        self.table.setContextMenuPolicy(Qt.ActionsContextMenu)
        self.delete_action = QAction("Delete...", self.table)
        self.delete_action.setShortcut(QKeySequence(QKeySequence.Delete))
        self.delete_action.setShortcutContext(Qt.WidgetShortcut)  # the list's key only
        # triggered(bool) would hand its `checked` flag to the slot's first parameter
        self.delete_action.triggered.connect(lambda _checked=False: self._delete())
        self.table.addAction(self.delete_action)

    def set_store(self, store: Store) -> None:
        """Show another store's runs (the window's "Open store...")."""
        self.store = store
        self.live_run_id = None
        self.connection_lost = False
        self.table.clearSelection()
        self.refresh()

    @property
    def reading(self) -> bool:
        """A background read of the runs is under way."""
        return self._reading is not None and not self._reading.done

    def _refresh_if_visible(self) -> None:
        """The timer's read, off the GUI thread: a distant server must not stall the window.
        A tick while the last read still waits (a server gone away) starts no other."""
        if (self.isVisible() or self.connection_lost) and not self.reading:  # lost: retried
            store = self.store
            self._reading = run_in_background(
                lambda: (store, store.runs(), store.worst_findings()),
                on_done=self._runs_read,
                on_error=lambda exc: self._show(None, exc),
                parent=self,
            )

    def _runs_read(self, answer) -> None:
        store, runs, worst = answer
        if store is self.store:  # not an answer from a store since replaced
            self._show(runs, None, worst)

    def refresh(self) -> None:
        """Read the runs now (a button, a run that started or ended); the timer reads them
        in the background."""
        try:
            runs, worst, error = self.store.runs(), self.store.worst_findings(), None
        except Exception as exc:
            runs, worst, error = None, {}, exc
        self._show(runs, error, worst)

    def _show(self, runs, error, worst: dict[int, str] | None = None) -> None:
        if error is not None:  # a locked, vanished or unreachable database: say so, retry
            reason = error_reason(error)
            if not self.connection_lost:
                self.connection_lost = True
                self.connection.emit(False, reason)
            return
        if self.connection_lost:
            self.connection_lost = False
            self.connection.emit(True, "")
        if self.table.state() == QAbstractItemView.EditingState:
            return  # a rebuild would close the name being typed; the rename refreshes after
        selected, current = set(self.selected_ids()), self._current()
        scroll = self.table.verticalScrollBar().value(), self.table.horizontalScrollBar().value()
        self._fill(runs, worst or {})
        self._reselect(selected, current)
        self.table.verticalScrollBar().setValue(scroll[0])
        self.table.horizontalScrollBar().setValue(scroll[1])

    def _fill(self, runs: list[RunInfo], worst: dict[int, str]) -> None:
        self.table.blockSignals(True)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(runs))
        for row, info in enumerate(runs):
            last = "" if info.last_reward is None else f"{info.last_reward:.3f}"
            cells = [
                _Item(str(info.id), info.id),
                _Item(info.name, info.name),
                _Item(str(info.status), str(info.status)),
                _Item(info.algorithm, info.algorithm),
                _Item(info.model, info.model),
                _Item(f"{info.last_step} / {info.total_steps}", info.last_step),
                _Item(last, info.last_reward if info.last_reward is not None else float("-inf")),
                _Item(f"{info.created_at:%Y-%m-%d %H:%M}", info.created_at),
                _Item(_duration(info), info.training_seconds or 0.0),
                _health_item(worst.get(info.id, "")),
            ]
            for col, cell in enumerate(cells):
                if col != 1:
                    cell.setFlags(cell.flags() & ~Qt.ItemIsEditable)
                cell.setData(Qt.UserRole, info.id)
                if info.error and col == 2:
                    cell.setToolTip(info.error)
                self.table.setItem(row, col, cell)
        self.table.setSortingEnabled(True)
        self.table.blockSignals(False)

    def _current(self) -> tuple[int, int] | None:
        """The run and column of the current cell (where the keyboard is)."""
        item = self.table.currentItem()
        return None if item is None else (item.data(Qt.UserRole), item.column())

    def _reselect(self, ids: set[int], current: tuple[int, int] | None) -> None:
        """The same runs selected and the same cell current as before the rows were rebuilt
        (all of them: selecting row by row would keep only the last)."""
        model, selection = self.table.selectionModel(), QItemSelection()
        for row in range(self.table.rowCount()):
            run_id = self.table.item(row, 0).data(Qt.UserRole)
            if current is not None and run_id == current[0]:
                index = self.table.model().index(row, current[1])
                model.setCurrentIndex(index, QItemSelectionModel.NoUpdate)
            if run_id in ids:
                selection.select(
                    self.table.model().index(row, 0),
                    self.table.model().index(row, len(COLUMNS) - 1),
                )
        model.select(selection, QItemSelectionModel.ClearAndSelect)

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.table.item(r, 0).data(Qt.UserRole) for r in rows]

    def select_ids(self, ids: list[int]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.MultiSelection)
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.UserRole) in ids:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def _one(self) -> int | None:
        ids = self.selected_ids()
        if len(ids) != 1:
            self.message.emit("Select one run")
            return None
        return ids[0]

    def _open(self) -> None:
        run_id = self._one()
        if run_id is not None:
            self.open_requested.emit(run_id)

    def _double_clicked(self, row: int, col: int) -> None:
        if col != 1:
            self.open_requested.emit(self.table.item(row, 0).data(Qt.UserRole))

    def _compare(self) -> None:
        ids = self.selected_ids()
        if len(ids) < 2:
            self.message.emit("Select two or more runs to compare (Ctrl+click)")
            return
        self.compare_requested.emit(ids)

    def _resume(self) -> None:
        """Asks which settings change (or, with no checkpoint left, whether to start over)."""
        run_id = self._one()
        if run_id is not None and (choice := ask_how_to_resume(self.store, run_id, self)):
            self.resume_requested.emit(run_id, choice)

    def _renamed(self, cell: QTableWidgetItem) -> None:
        if cell.column() != 1:
            return
        name = cell.text().strip()
        if name:
            try:
                self.store.rename_run(cell.data(Qt.UserRole), name)
                self.message.emit(f"Renamed run {cell.data(Qt.UserRole)} to {name!r}")
            except USER_ERRORS as exc:  # a read-only store keeps its names
                self.message.emit(str(exc))
        QTimer.singleShot(0, self.refresh)  # once the editor has closed (no rebuild while open)

    def _delete(self) -> None:
        """Asks first, naming the runs and what goes with them; No is the default."""
        ids = [i for i in self.selected_ids() if i != self.live_run_id]
        if not ids:
            self.message.emit("Select finished runs to delete (not the one training)")
            return
        try:
            lost = _what_is_lost(self.store, ids)
        except USER_ERRORS as exc:  # a run deleted meanwhile by another window
            self.message.emit(str(exc))
            self.refresh()
            return
        runs = "1 run" if len(ids) == 1 else f"{len(ids)} runs"
        answer = QMessageBox.question(
            self,
            "Delete runs",
            f"Delete {runs}: {lost}?\n\nTheir metrics, samples, logs and checkpoints on disk "
            "are removed for good.",
            QMessageBox.Yes | QMessageBox.No,
            QMessageBox.No,
        )
        if answer != QMessageBox.Yes:
            return
        try:
            for run_id in ids:
                delete_run(self.store, run_id)  # with its checkpoint folders
        except USER_ERRORS as exc:  # a run another process trains now
            self.message.emit(str(exc))
            self.refresh()
            return
        self.message.emit(f"Deleted {len(ids)} run(s)")
        self.refresh()

    def _export(self, what: str) -> None:
        run_id = self._one()
        if run_id is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {what}", f"run-{run_id}-{what}.csv", "CSV (*.csv);;JSON (*.json)"
        )
        if path:
            export, store = export_metrics if what == "metrics" else export_samples, self.store
            run_in_background(
                lambda: export(store, run_id, path),
                on_done=lambda n: self.message.emit(f"Exported {n} {what} rows to {path}"),
                on_error=self._export_failed,
                parent=self,
            )

    def _export_model(self, format: str) -> None:
        run_id = self._one()
        if run_id is None:
            return
        store = self.store
        lora = int(store.run_config(run_id).get("model", {}).get("lora_r", 0) or 0) > 0
        default = Path.home() / f"run-{run_id}-{format}"
        choice = ask_export(run_id, lora, default, format, parent=self)
        if choice is not None:
            out = choice.folder
            self.message.emit(f"Exporting run {run_id} to {out}...")
            run_in_background(
                lambda: export_run_model(
                    store, run_id, out, format=choice.format, outtype=choice.outtype
                ),
                on_done=lambda done: self.message.emit(
                    f"Exported run {run_id} (step {done[1]}) to {done[0]}"
                ),
                on_error=self._export_failed,
                parent=self,
            )

    def _export_failed(self, exc: BaseException) -> None:
        QMessageBox.warning(self, "Export failed", str(exc))
