"""MLflow: MLFLOW_TRACKING_URI when set, else a local `mlruns` folder beside the runs'
checkpoints: MLflow's SQLite store (`mlruns/mlflow.db`; MLflow 3 refuses its old plain-file
store) with the artifacts beside it; `mlflow ui --backend-store-uri sqlite:///.../mlflow.db`
shows it. One MLflow run per run."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.events import Sample
from core.trackers.base import TrackedRun, finite, flat, sample_table

MAX_PARAM_CHARS = 6000  # MLflow refuses longer parameter values


class MlflowTracker:
    name = "mlflow"

    def __init__(self, run: TrackedRun) -> None:
        from mlflow import MlflowClient

        uri, artifacts = os.environ.get("MLFLOW_TRACKING_URI"), None
        if not uri:
            folder = run.shared / "mlruns"
            folder.mkdir(parents=True, exist_ok=True)
            uri, artifacts = local_store(folder), (folder / "artifacts").as_uri()
        self._client = MlflowClient(tracking_uri=uri)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "rlstudio")
        found = self._client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found
            else self._client.create_experiment(experiment, artifact_location=artifacts)
        )
        tags = {"mlflow.runName": run.name, "rlstudio.run_id": str(run.run_id)}
        self._run_id = self._client.create_run(experiment_id, tags=tags).info.run_id
        params = {k: str(v)[:MAX_PARAM_CHARS] for k, v in flat(run.config)}
        from mlflow.entities import Param

        self._client.log_batch(self._run_id, params=[Param(k, v) for k, v in params.items()])
        self.where = f"run {self._run_id} in experiment {experiment!r} at {uri}"

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = _millis()
        metrics = [Metric(k, v, now, step) for k, v in finite(values).items()]
        self._client.log_batch(self._run_id, metrics=metrics)

    def log_samples(self, step: int, rows: Sequence[Sample]) -> None:
        columns, data = sample_table(rows)
        table = {c: [row[i] for row in data] for i, c in enumerate(columns)}
        self._client.log_table(self._run_id, table, f"samples/step_{step:06d}.json")

    def close(self) -> None:
        self._client.set_terminated(self._run_id)


def local_store(folder: Path) -> str:
    """The tracking URI of the local store in `folder` (tests and `mlflow ui` read it)."""
    return f"sqlite:///{(folder / 'mlflow.db').as_posix()}"


def _millis() -> int:
    import time

    return int(time.time() * 1000)
