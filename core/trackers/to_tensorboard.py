"""TensorBoard: event files under the run's folder (`tensorboard --logdir FOLDER`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from core.events import Sample
from core.trackers.base import TrackedRun, sample_table


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, run: TrackedRun) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        folder = run.folder / "tensorboard"
        self._writer = SummaryWriter(log_dir=str(folder), flush_secs=10)
        self.where = f"writing to {folder} (tensorboard --logdir {folder})"
        text = json.dumps(dict(run.config), indent=2, default=str)
        # four leading spaces: TensorBoard's text tab reads markdown, this keeps it verbatim
        self._writer.add_text("config", "\n".join("    " + line for line in text.splitlines()))

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self._writer.add_scalar(key, value, step)

    def log_samples(self, step: int, rows: Sequence[Sample]) -> None:
        columns, data = sample_table(rows)
        cells = [[_cell(v) for v in row] for row in data]
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        self._writer.add_text("samples", "\n".join(lines), step)

    def close(self) -> None:
        self._writer.close()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", "<br>")
