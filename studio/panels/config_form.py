"""A settings form generated from the config dataclasses' fields and metadata.

Each field gets an editor chosen by its type (check box, choice list or a line
edit), the help text as tooltip, and an inline message under it when the value
does not pass the same check a recipe file goes through (`core.config`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.config import ConfigError, check_setting, field_info

ERROR_STYLE = "color: #d9534f;"


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _as_text(value: Any, hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return ", ".join(_quote(v) for v in value)
    if isinstance(value, float):
        return repr(value) if abs(value) >= 1e-4 or value == 0 else f"{value:g}"
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _parse(text: str, hint: Any) -> Any:
    """Line-edit text to a value for the config check; numbers and lists read as TOML."""
    text = text.strip()
    if hint is str:
        return text
    if typing.get_origin(hint) is tuple:
        if not text:
            return ()
        try:
            return tuple(tomllib.loads(f"v = [{text}]")["v"])
        except tomllib.TOMLDecodeError:
            msg = 'expected quoted text separated by commas, e.g. "\\n\\n", "END"'
            raise ConfigError(msg) from None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # the check names the bad value ("expected a number")


class _Field:
    """One setting's editor and its inline message."""

    def __init__(self, section: str, cls: type, name: str, hint: Any, meta: Any) -> None:
        self.section, self.cls, self.name, self.hint = section, cls, name, hint
        self.path = f"{section}.{name}"
        tip = meta.get("help", "")
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None or hi is not None:
            tip += (
                f"\nRange: {lo if lo is not None else '-inf'} .. {hi if hi is not None else 'inf'}"
            )
        listed = typing.get_origin(hint) is tuple  # a list of choices: typed, comma-separated
        if listed and meta.get("choices"):
            tip += f"\nAny of: {', '.join(meta['choices'])}"
        if hint is bool:
            self.widget: QWidget = QCheckBox()
        elif meta.get("choices") and not listed:
            self.widget = QComboBox()
            self.widget.addItems(list(meta["choices"]))
        else:
            self.widget = QLineEdit()
        self.widget.setObjectName(self.path)
        self.widget.setToolTip(tip)
        self.message = QLabel()
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setWordWrap(True)
        self.message.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # never widens
        self.message.hide()
        self.error: str | None = None

    def set_value(self, value: Any) -> None:
        w = self.widget
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        else:
            w.setText(_as_text(value, self.hint))

    def raw(self) -> Any:
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentText()
        return _parse(w.text(), self.hint)

    def check(self) -> Any:
        """The checked value, or None with the inline message shown."""
        try:
            value = check_setting(self.cls, self.name, self.raw(), prefix=self.section)
        except ConfigError as exc:
            self.error = str(exc)
            self.message.setText(self.error)
            self.message.show()
            return None
        self.error = None
        self.message.hide()
        return value


class ConfigForm(QScrollArea):
    """Groups of settings, one per config section, emitting `changed` on every edit."""

    changed = Signal()

    def __init__(
        self,
        sections: list[tuple[str, type]],
        skip: set[str] = frozenset(),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        body = QWidget()
        layout = QVBoxLayout(body)
        self.fields: dict[str, _Field] = {}
        self.groups: dict[str, QGroupBox] = {}
        for section, cls in sections:
            box = QGroupBox(_label(section))
            form = QFormLayout(box)
            for name, hint, meta in field_info(cls):
                path = f"{section}.{name}"
                if path in skip or dataclasses.is_dataclass(hint):
                    continue
                f = _Field(section, cls, name, hint, meta)
                self.fields[path] = f
                title = QLabel(_label(name))
                title.setToolTip(meta.get("help", ""))
                form.addRow(title, f.widget)
                form.addRow("", f.message)
                self._connect(f)
            self.groups[section] = box
            layout.addWidget(box)
        layout.addStretch(1)
        self.setWidget(body)

    def _connect(self, f: _Field) -> None:
        w = f.widget
        if isinstance(w, QCheckBox):
            w.toggled.connect(self._edited)
        elif isinstance(w, QComboBox):
            w.currentTextChanged.connect(self._edited)
        else:
            w.textChanged.connect(self._edited)

    def _edited(self, *_: Any) -> None:
        self.changed.emit()

    def set_values(self, data: dict[str, dict[str, Any]]) -> None:
        """Fill from `to_dict(config)`-shaped data without emitting a change per field."""
        self.blockSignals(True)
        try:
            for f in self.fields.values():
                if f.name in data.get(f.section, {}):
                    f.set_value(data[f.section][f.name])
                    f.check()
        finally:
            self.blockSignals(False)
        self.changed.emit()

    def merged(self, data: dict[str, dict[str, Any]]) -> tuple[dict, dict[str, str]]:
        """`data` with the form's valid values written in, and the fields' messages."""
        out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
        errors: dict[str, str] = {}
        for path, f in self.fields.items():
            value = f.check()
            if f.error is not None:
                errors[path] = f.error
                continue
            out.setdefault(f.section, {})[f.name] = (
                list(value) if isinstance(value, tuple) else value
            )
        return out, errors

    def widget_for(self, path: str) -> QWidget:
        return self.fields[path].widget
