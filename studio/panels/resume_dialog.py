"""Asked before a stored run is carried on: the settings that may change mid-run (a lower
learning rate after a divergence, more steps), each shown with the run's value; or, for a
run with steps recorded and no checkpoint left on disk, the explicit choice to start it
over as a new run linked to it (its history stays)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit

from core import RESUMABLE_SETTINGS, RunConfig, Store, resume_point
from core.config import ConfigError, from_dict, parse_override, resumed_with


@dataclass(frozen=True)
class ResumeChoice:
    """What the user chose: the changed settings, and whether to start over."""

    overrides: dict[str, Any] = field(default_factory=dict)
    restart: bool = False


AS_STORED = ResumeChoice()  # resume with the run's own settings


def _value(cfg: RunConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


class ResumeDialog(QDialog):
    def __init__(self, store: Store, run_id: int, parent=None) -> None:
        super().__init__(parent)
        info, point = store.run(run_id), resume_point(store, run_id)
        self.cfg = from_dict(RunConfig, dict(store.run_config(run_id)))
        self.restart = point.checkpoint is None and info.last_step > 0
        self.setWindowTitle(f"Resume run {run_id}")
        form = QFormLayout(self)
        self.intro = QLabel(_intro(run_id, info.last_step, point) + " These settings may change:")
        self.intro.setWordWrap(True)
        form.addRow(self.intro)
        self.fields: dict[str, QLineEdit] = {}
        for key in RESUMABLE_SETTINGS:
            self.fields[key] = QLineEdit(str(_value(self.cfg, key)), objectName=key)
            form.addRow(key, self.fields[key])
        self.problem = QLabel(wordWrap=True, objectName="problem")
        form.addRow(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok = buttons.button(QDialogButtonBox.Ok)
        self.ok.setText("Start over as a new run" if self.restart else "Resume")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def overrides(self) -> dict[str, Any]:
        """The settings whose text the user changed, read as `--set` reads them."""
        changed = {}
        for key, edit in self.fields.items():
            if edit.text().strip() != str(_value(self.cfg, key)):
                changed[key] = parse_override(f"{key}={edit.text()}")[1]
        return changed

    def accept(self) -> None:
        try:  # a bad value is named here, and the dialog stays open
            resumed_with(self.cfg, self.overrides())
        except ConfigError as exc:
            self.problem.setText(str(exc))
            return
        super().accept()

    def choice(self) -> ResumeChoice:
        return ResumeChoice(self.overrides(), self.restart)


def _intro(run_id: int, last_step: int, point) -> str:
    """Where the run carries on, and which newer checkpoints are damaged and why."""
    skipped = "".join(f" {line[0].upper()}{line[1:]}." for line in point.lines())
    if point.checkpoint is not None or last_step <= 0:
        step = point.checkpoint.step if point.checkpoint else 0
        return f"Run {run_id} carries on from step {step}.{skipped}"
    which, why = "checkpoint on disk", ""
    if point.any_on_disk:
        which, why = "usable checkpoint", f" ({'; '.join(point.lines())})"
    return (
        f"Run {run_id} has no {which} to resume from{why}; its {last_step} recorded steps "
        "are kept. It can start over as a new run linked to it."
    )


def ask_how_to_resume(store: Store, run_id: int, parent=None) -> ResumeChoice | None:
    """The user's choice for resuming `run_id`, or None when they cancel."""
    dialog = ResumeDialog(store, run_id, parent)
    return dialog.choice() if dialog.exec() == QDialog.Accepted else None
