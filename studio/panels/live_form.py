"""The setup form while a run trains: only the settings a run can take between two steps
(`core.config.RESUMABLE_SETTINGS`, as `rlstudio resume --set`) stay editable; the others
and the picks above the form (recipe, model, prompts...) are fixed, and say why.

What the user edits in the open fields goes to the run on Resume (`take_changes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtWidgets import QLineEdit, QWidget

from core.config import RESUMABLE_SETTINGS
from studio.panels.config_form import ConfigForm

FIXED = "Fixed while a run is live; stop it, or resume it with other settings."


class LiveHold:
    """Holds `form` (and the `picks` widgets) for the time a run trains."""

    def __init__(self, form: ConfigForm, picks: Sequence[QWidget]) -> None:
        self.form, self.picks = form, list(picks)
        self.live = False
        self._tips: dict[QWidget, str] = {}  # each fixed widget's own tooltip, given back
        self._handed: dict[str, Any] = {}  # the open fields' values the run has

    def hold(self, live: bool, can_change: bool) -> None:
        """`live`: a run trains; `can_change`: it takes settings between steps (in-window)."""
        if live == self.live:
            return
        self.live = live
        open_ = set(RESUMABLE_SETTINGS) if can_change else set()
        fixed = [f.widget for path, f in self.form.fields.items() if path not in open_]
        for widget in [*fixed, *self.picks]:
            self._fix(widget, live)
        if live:
            self._handed = self._open_values()

    def take_changes(self) -> tuple[dict[str, Any], list[str]]:
        """The open settings edited since the run went live or since the last call, now
        counted as the run's; and the messages of those whose value does not pass (kept
        in the form as typed, for the user to fix)."""
        changes, problems = {}, []
        for path, value in self._open_values(problems).items():
            if value != self._handed.get(path):
                changes[path] = value
        self._handed.update(changes)
        return changes, problems

    def _open_values(self, problems: list[str] | None = None) -> dict[str, Any]:
        values = {}
        for path in RESUMABLE_SETTINGS:
            field = self.form.fields.get(path)
            if field is None:
                continue
            value = field.check()
            if field.error is None:
                values[path] = value
            elif problems is not None:
                problems.append(field.error)
        return values

    def _fix(self, widget: QWidget, fixed: bool) -> None:
        if isinstance(widget, QLineEdit):  # its text stays selectable
            widget.setReadOnly(fixed)
        else:
            widget.setEnabled(not fixed)
        if fixed:
            self._tips[widget] = widget.toolTip()
            own = self._tips[widget]
            widget.setToolTip(f"{FIXED}\n\n{own}" if own else FIXED)
        else:
            widget.setToolTip(self._tips.pop(widget, widget.toolTip()))
