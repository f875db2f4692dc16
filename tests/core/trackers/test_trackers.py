"""`logging.report_to` as a user sets it: `rlstudio train ... --set logging.report_to=...`
on tiny-random, then each tracker's own files read back with its own reader."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from core.cli.main import main
from core.runner import checkpoint_root
from core.store import Store
from tests.core.helpers import TINY_RECIPE


def train(db: Path, *settings: str, steps: int = 2) -> tuple[int, Store]:
    args = ["--db", str(db), "train", str(TINY_RECIPE), "--steps", str(steps)]
    args += ["--set", "training.batch_size=4", "--set", "logging.samples_per_step=2"]
    for s in settings:
        args += ["--set", s]
    assert main(args) == 0
    store = Store(f"sqlite:///{db}")
    return store.runs()[0].id, store


def log_lines(store: Store, run_id: int) -> list[str]:
    return [f"{e.level}: {e.message}" for e in store.logs(run_id)]


needs = {
    name: pytest.mark.skipif(
        importlib.util.find_spec(name) is None,
        reason=f'{name} is not installed (pip install "rlstudio[{name}]")',
    )
    for name in ("tensorboard", "wandb", "mlflow")
}


@needs["tensorboard"]
def test_tensorboard_gets_every_metric_the_config_and_the_samples(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_id, store = train(tmp_path / "runs.db", "logging.report_to=tensorboard")
    folder = checkpoint_root(store, run_id) / "tensorboard"
    assert any(str(folder) in line for line in log_lines(store, run_id))
    assert str(folder) in capsys.readouterr().err  # the CLI says where too
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    stored = store.metrics(run_id)
    reward = events.Scalars("reward/mean")
    assert [e.step for e in reward] == [1, 2]
    assert reward[1].value == pytest.approx(stored["reward/mean"].values[-1], rel=1e-6)
    assert set(stored) <= set(events.Tags()["scalars"])  # every key under its own name
    text = events.Tags()["tensors"]  # add_text lands as tensors
    assert "config/text_summary" in text and "samples/text_summary" in text
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"learning_rate": 0.0003' in config


def test_a_tracker_that_is_missing_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    run_id, store = train(tmp_path / "runs.db", 'logging.report_to=["wandb"]')
    assert store.run(run_id).status == "completed"
    warnings = [line for line in log_lines(store, run_id) if line.startswith("warning")]
    assert warnings == [
        'warning: wandb: not installed, so not reporting (pip install "rlstudio[wandb]" '
        "or pip install wandb)"
    ]


@needs["mlflow"]
def test_a_tracker_whose_server_is_down_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run_id, store = train(tmp_path / "runs.db", "logging.report_to=mlflow")
    assert store.run(run_id).status == "completed"
    warnings = [line for line in log_lines(store, run_id) if line.startswith("warning")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: mlflow: could not start")
    assert list(store.metrics(run_id)["reward/mean"].steps) == [1, 2]


def test_an_unknown_tracker_is_refused_before_the_run(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    code = main(["--db", db, "train", str(TINY_RECIPE), "--set", "logging.report_to=neptune"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rlstudio: error: logging.report_to[0] = 'neptune': must be one of")


@needs["wandb"]
def test_wandb_offline_gets_metrics_config_and_a_samples_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_id, store = train(tmp_path / "runs.db", "logging.report_to=wandb")
    (run_file,) = (checkpoint_root(store, run_id) / "wandb").glob("offline-run-*/run-*.wandb")
    history, config = {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json)
                for i in record.history.item
            }
            history[items["_step"]] = items
        elif kind == "run":
            config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
    stored = store.metrics(run_id)["reward/mean"]
    assert sorted(history) == [1, 2]
    assert history[2]["reward/mean"] == pytest.approx(stored.values[-1])
    assert history[2]["samples/_type"] == "table-file" and history[2]["samples/nrows"] == 2
    assert config["training"]["learning_rate"] == 0.0003 and config["run_id"] == run_id
    assert any(line.startswith("info: wandb: offline") for line in log_lines(store, run_id))


def wandb_records(path: Path):
    """The records of an offline run's `.wandb` file (LevelDB's log format: 32 KiB blocks
    of crc32, length, type chunks after a 7-byte header), as W&B's own protobufs."""
    from wandb.proto import wandb_internal_pb2

    data, pos, parts, block = path.read_bytes(), 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk  # full/first, or middle/last
        if kind in (1, 4) and parts:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            yield record


@needs["mlflow"]
def test_mlflow_file_store_gets_metrics_params_and_samples(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id, store = train(tmp_path / "runs.db", "logging.report_to=mlflow")
    from mlflow import MlflowClient

    from core.trackers.to_mlflow import local_store

    mlruns = checkpoint_root(store, run_id).parent / "mlruns"
    client = MlflowClient(tracking_uri=local_store(mlruns))
    experiment = client.get_experiment_by_name("rlstudio")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.data.tags["rlstudio.run_id"] == str(run_id)
    assert found.data.params["training.learning_rate"] == "0.0003"
    assert found.data.params["reward.components.0.kind"] == "python"
    history = client.get_metric_history(found.info.run_id, "reward/mean")
    assert [m.step for m in history] == [1, 2]
    assert history[-1].value == pytest.approx(store.metrics(run_id)["reward/mean"].values[-1])
    artifacts = [a.path for a in client.list_artifacts(found.info.run_id, "samples")]
    assert artifacts == ["samples/step_000001.json", "samples/step_000002.json"]
    assert found.info.status == "FINISHED"
    assert (mlruns / "artifacts").is_dir()
