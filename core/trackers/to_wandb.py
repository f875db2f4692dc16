"""Weights & Biases. Without a login (no WANDB_API_KEY, no netrc entry) and no WANDB_MODE
it writes offline under the run's folder (`wandb sync` uploads it later) rather than
stopping the run at a login prompt."""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping, Sequence

from core.events import Sample
from core.trackers.base import TrackedRun, sample_table


def _logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbTracker:
    name = "wandb"

    def __init__(self, run: TrackedRun) -> None:
        import wandb

        self._wandb = wandb
        mode = os.environ.get("WANDB_MODE") or ("online" if _logged_in() else "offline")
        run.folder.mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "rlstudio"),
            name=run.name,
            config=dict(run.config),
            dir=str(run.folder),
            mode=mode,
            reinit="create_new",
        )
        self.where = f"{mode}, in {self._run.dir}"
        if mode == "offline":
            self.where += f" (`wandb sync {os.path.dirname(self._run.dir)}` uploads it)"

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        self._run.log(dict(values), step=step)

    def log_samples(self, step: int, rows: Sequence[Sample]) -> None:
        columns, data = sample_table(rows)
        self._run.log({"samples": self._wandb.Table(columns=columns, data=data)}, step=step)

    def close(self) -> None:
        self._run.finish()
