"""A run's metrics and samples out of the store as CSV and JSON, as the runs browser
and a user's notebook read them."""

from __future__ import annotations

import csv
import json

import pytest

from core.exports import export_metrics, export_samples
from core.runner import start_run
from core.store import Store
from tests.core.helpers import tiny_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    db = tmp_path_factory.mktemp("exports") / "runs.db"
    cfg = tiny_config({"training.steps": 2, "training.batch_size": 4})
    with Store(f"sqlite:///{db}") as store:
        run_id = start_run(cfg, store, name="exported")
    return f"sqlite:///{db}", run_id


def test_metrics_csv_and_json_hold_every_point(finished_run, tmp_path):
    url, run_id = finished_run
    with Store(url) as store:
        stored = store.metrics(run_id)
        n_csv = export_metrics(store, run_id, tmp_path / "m.csv")
        n_json = export_metrics(store, run_id, tmp_path / "m.json")
    expected = sum(len(s.steps) for s in stored.values())
    assert n_csv == n_json == expected
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert len(rows) == expected
    reward = [r for r in rows if r["key"] == "reward/mean"]
    assert [int(r["step"]) for r in reward] == [1, 2]
    assert float(reward[1]["value"]) == pytest.approx(stored["reward/mean"].values[1])
    data = json.loads((tmp_path / "m.json").read_text())
    assert {d["key"] for d in data} == set(stored)


def test_samples_csv_and_json_carry_components_and_tokens(finished_run, tmp_path):
    url, run_id = finished_run
    with Store(url) as store:
        count = store.sample_count(run_id)
        assert export_samples(store, run_id, tmp_path / "s.csv") == count
        export_samples(store, run_id, tmp_path / "s.json")
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == count > 0
    assert "letter_e" in rows[0]  # one column per reward component
    data = json.loads((tmp_path / "s.json").read_text())
    assert data[0]["tokens"] and len(data[0]["tokens"]) == len(data[0]["logprobs"])


def test_unknown_format_is_refused(finished_run, tmp_path):
    url, run_id = finished_run
    with Store(url) as store, pytest.raises(ValueError, match=r"\.csv or \.json"):
        export_metrics(store, run_id, tmp_path / "m.xlsx")
