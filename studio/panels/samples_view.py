"""Generated samples: a searchable, filterable table and a per-token detail pane.

The detail pane colours each generated token by its logprob, its KL to the
reference or its advantage; hovering a token reads out all three, so a user
can see which words the reward came from (and spot reward hacking).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QUrl
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.events import Sample
from core.store import Store
from studio.panels.elided_label import ElidedLabel
from studio.panels.step_box import StepBox

FIXED_COLUMNS = ("Step", "Prompt", "Completion", "Reward")
COLOUR_BY = ("logprob", "kl", "advantage")
TOKEN_HINT = "Hover a token for its logprob, KL and advantage"
MAX_ROWS = 50_000  # the table keeps the newest rows; the store keeps them all
SAMPLES_LOADED = 5000  # a reopened run shows its newest samples; exports carry them all


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SamplesModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.items: list[Sample] = []
        self.components: list[str] = []

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(FIXED_COLUMNS) + len(self.components)

    def headerData(self, section: int, orientation, role=Qt.DisplayRole):
        if role != Qt.DisplayRole or orientation != Qt.Horizontal:
            return None
        if section < len(FIXED_COLUMNS):
            return FIXED_COLUMNS[section]
        return self.components[section - len(FIXED_COLUMNS)]

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        item = self.items[index.row()]
        col = index.column()
        value = self._value(item, col)
        if role == Qt.DisplayRole:
            if isinstance(value, float):
                return f"{value:.3f}"
            return _one_line(value) if isinstance(value, str) else value
        if role == Qt.UserRole:  # sort key
            return value if value is not None else -math.inf
        if role == Qt.ToolTipRole and col in (1, 2):
            return value[:2000]
        return None

    def _value(self, item: Sample, col: int) -> Any:
        if col == 0:
            return item.step
        if col == 1:
            return item.prompt
        if col == 2:
            return item.completion
        if col == 3:
            return item.reward
        return item.components.get(self.components[col - len(FIXED_COLUMNS)])

    def add(self, items: list[Sample]) -> None:
        if not items:
            return
        names = [n for i in items for n in i.components if n not in self.components]
        if names:
            self.beginResetModel()
            self.components.extend(dict.fromkeys(names))
            self.items.extend(items)
            self.endResetModel()
        else:
            start = len(self.items)
            self.beginInsertRows(QModelIndex(), start, start + len(items) - 1)
            self.items.extend(items)
            self.endInsertRows()
        overflow = len(self.items) - MAX_ROWS
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            del self.items[:overflow]
            self.endRemoveRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.items, self.components = [], []
        self.endResetModel()


class SamplesFilter(QSortFilterProxyModel):
    """Text search over prompt and completion, a step range and a minimum reward."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.step_min, self.step_max = -math.inf, math.inf
        self.reward_min = -math.inf
        self.setSortRole(Qt.UserRole)

    def set_filter(self, text: str, step_min: float, step_max: float, reward_min: float) -> None:
        self.beginFilterChange()  # Qt >= 6.10; invalidateFilter() is deprecated there
        self.text = text.lower()
        self.step_min, self.step_max, self.reward_min = step_min, step_max, reward_min
        self.endFilterChange()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:
        item = self.sourceModel().items[row]
        if not self.step_min <= item.step <= self.step_max:
            return False
        if item.reward is not None and item.reward < self.reward_min:
            return False
        return not self.text or (
            self.text in item.prompt.lower() or self.text in item.completion.lower()
        )


def token_html(item: Sample, colour_by: str) -> str:
    """The prompt (grey) and the completion's tokens on coloured backgrounds, as links
    whose hover shows the token's numbers."""
    prompt = html.escape(item.prompt).replace("\n", "<br>")
    out = [f"<p style='color:#888'>{prompt}</p><p>"]
    if not item.tokens:
        out.append(html.escape(item.completion).replace("\n", "<br>"))
        return "".join(out) + "</p>"
    values = {"logprob": item.logprobs, "kl": item.kl, "advantage": item.advantages}[colour_by]
    finite = [abs(v) for v in (values or []) if v is not None and math.isfinite(v)]
    scale = max(finite) if finite else 1.0
    for i, token in enumerate(item.tokens):
        v = values[i] if values and i < len(values) else None
        text = html.escape(str(token)).replace("\n", "↵<br>") or "&nbsp;"
        out.append(
            f"<a href='tok:{i}' style='text-decoration:none; color:palette(text); "
            f"background-color:{_colour(v, colour_by, scale)}'>{text}</a>"
        )
    return "".join(out) + "</p>"


def _colour(v: float | None, colour_by: str, scale: float) -> str:
    if v is None or not math.isfinite(v):
        return "transparent"
    t = min(abs(v) / scale, 1.0) if scale > 0 else 0.0
    if colour_by == "logprob":  # unlikely tokens (very negative) glow red
        return f"rgba(220, 60, 60, {0.65 * t:.2f})"
    if colour_by == "kl":  # far from the reference: orange
        return f"rgba(240, 150, 30, {0.7 * t:.2f})"
    return f"rgba(40, 170, 80, {0.6 * t:.2f})" if v >= 0 else f"rgba(60, 110, 230, {0.6 * t:.2f})"


class SamplesView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = SamplesModel()
        self.steps: tuple[int, int] | None = None  # the first and last step in the table
        self.proxy = SamplesFilter()
        self.proxy.setSourceModel(self.model)
        split = QSplitter(Qt.Vertical)
        split.addWidget(self._build_table_pane())
        split.addWidget(self._build_detail_pane())
        split.setSizes([300, 200])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    def _build_table_pane(self) -> QWidget:
        """The filters (text, step range, minimum reward) above the table."""
        self.search = QLineEdit(placeholderText="Search prompts and completions")
        self.step_min, self.step_max = StepBox(last=False), StepBox(last=True)
        self.reward_min = QDoubleSpinBox()
        self.reward_min.setRange(-1e9, 1e9)
        self.reward_min.setValue(-1e9)
        self.reward_min.setDecimals(3)
        self.reward_min.setSpecialValueText("any")
        self.search.textChanged.connect(self._refilter)
        for w in (self.step_min, self.step_max, self.reward_min):
            w.valueChanged.connect(self._refilter)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableView.SelectRows)
        self.table.setSelectionMode(QTableView.SingleSelection)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._show_current)

        filters = QHBoxLayout()
        filters.addWidget(self.search, 2)
        for w in (QLabel("Steps"), self.step_min, QLabel("to"), self.step_max):
            filters.addWidget(w)
        filters.addWidget(QLabel("Reward ≥"))
        filters.addWidget(self.reward_min)
        pane = QWidget()
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(filters)
        layout.addWidget(self.table)
        return pane

    def _build_detail_pane(self) -> QWidget:
        """One sample's tokens, coloured by the chosen quantity, and the hovered token."""
        self.colour_by = QComboBox()
        self.colour_by.addItems(["logprob", "KL to reference", "advantage"])
        self.colour_by.currentIndexChanged.connect(lambda _: self._show_current())
        self.detail = QTextBrowser()
        self.detail.setOpenLinks(False)
        self.detail.highlighted.connect(self._hover_token)
        self.token_info = ElidedLabel(TOKEN_HINT)
        self.components_label = QLabel()
        self.components_label.setWordWrap(True)
        colour_row = QHBoxLayout()
        colour_row.addWidget(QLabel("Colour tokens by"))
        colour_row.addWidget(self.colour_by)
        colour_row.addWidget(self.components_label, 1)
        pane = QWidget()
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(colour_row)
        layout.addWidget(self.detail, 1)
        layout.addWidget(self.token_info)
        return pane

    def add_items(self, items: Iterable[Sample]) -> None:
        items = list(items)
        self.model.add(items)
        if not items:
            return
        steps = [i.step for i in items]
        if self.steps is not None:
            steps += self.steps
        self.steps = (min(steps), max(steps))
        for box in (self.step_min, self.step_max):
            box.follow(*self.steps)

    def show_stored(self, store: Store, run_id: int, up_to: int | None = None) -> None:
        """The run's newest stored samples (up to a step), in place of what is shown."""
        self.clear()
        total = store.sample_count(run_id)
        rows = store.samples(run_id, offset=max(0, total - SAMPLES_LOADED), limit=SAMPLES_LOADED)
        self.add_items(r for r in rows if up_to is None or r.step <= up_to)

    def recent(self, n: int) -> list[Sample]:
        """The newest `n` samples in the table (oldest first)."""
        return self.model.items[-n:] if n > 0 else []

    def clear(self) -> None:
        """Empty, for a new run: the table, the step range and the detail pane."""
        self.model.clear()
        self.steps = None
        for box in (self.step_min, self.step_max):
            box.forget()
        self.detail.clear()
        self.components_label.clear()
        self.token_info.setText(TOKEN_HINT)
        self._refilter()

    def _refilter(self, *_: Any) -> None:
        reward_min = self.reward_min.value()
        self.proxy.set_filter(
            self.search.text(),
            -math.inf if self.step_min.unbounded() else self.step_min.value(),
            math.inf if self.step_max.unbounded() else self.step_max.value(),
            -math.inf if reward_min <= self.reward_min.minimum() else reward_min,
        )

    def current_item(self) -> Sample | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.items[self.proxy.mapToSource(index).row()]

    def _show_current(self, *_: Any) -> None:
        item = self.current_item()
        if item is None:
            return
        colour_by = COLOUR_BY[self.colour_by.currentIndex()]
        self.detail.setHtml(token_html(item, colour_by))
        parts = [f"reward {item.reward:.3f}" if item.reward is not None else "reward -"]
        parts += [f"{k} {v:.3f}" for k, v in item.components.items() if v is not None]
        self.components_label.setText(" · ".join(parts))

    def _hover_token(self, url: QUrl) -> None:
        item = self.current_item()
        text = url.toString()
        if item is None or not text.startswith("tok:") or not item.tokens:
            return
        i = int(text[4:])

        def at(values):
            v = values[i] if values and i < len(values) else None
            return "-" if v is None else f"{v:.3f}"

        self.token_info.setText(
            f"token {i} {item.tokens[i]!r}: logprob {at(item.logprobs)}, "
            f"KL {at(item.kl)}, advantage {at(item.advantages)}"
        )
