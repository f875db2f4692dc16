"""A broken local model folder (core.lm.model_folder): the message says what is broken, and
`rlstudio train --model FOLDER` refuses it before a run row exists."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.lm.device import ModelError
from core.lm.sources import default_tokenizer_dir, load_tokenizer, resolve_source, tiny_random_model
from tests.core.helpers import ROOT, TINY_RECIPE


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """tiny-random saved as a plain transformers folder."""
    folder = tmp_path_factory.mktemp("models") / "good"
    tokenizer = load_tokenizer(str(default_tokenizer_dir()))
    tiny_random_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _truncated(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])


def _no_model_type(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    del config["model_type"]
    (folder / "config.json").write_text(json.dumps(config))


def _no_tokenizer(folder: Path) -> None:
    for path in folder.glob("tokenizer*"):
        path.unlink()


def _missing_shard(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    index = {"weight_map": {"a": "model-1-of-2.safetensors", "b": "model-2-of-2.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


BROKEN = {
    "no_weights": (_no_weights, "has no weights: expected model.safetensors or pytorch_model.bin"),
    "truncated": (_truncated, "model.safetensors is damaged (Error while deserializing header"),
    "bad_json": (
        lambda f: (f / "config.json").write_text("{oops"),
        "config.json is not valid JSON (Expecting property name",
    ),
    "no_model_type": (_no_model_type, "config.json: transformers cannot read it: Unrecognized"),
    "no_tokenizer": (_no_tokenizer, "has no tokenizer: expected tokenizer.json"),
    "missing_shard": (
        _missing_shard,
        "is missing the weight shard model-1-of-2.safetensors and 1 more (listed in "
        "model.safetensors.index.json)",
    ),
}


def broken_copy(good: Path, tmp_path: Path, case: str) -> Path:
    folder = tmp_path / case
    shutil.copytree(good, folder)
    BROKEN[case][0](folder)
    return folder


def test_a_sound_folder_passes(good):
    assert resolve_source(str(good)) == str(good)


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_folder_says_what_is_broken(good, tmp_path, case):
    folder = broken_copy(good, tmp_path, case)
    with pytest.raises(ModelError) as info:
        resolve_source(str(folder))
    assert BROKEN[case][1] in str(info.value)
    assert "not a local folder" not in str(info.value)


def test_train_refuses_it_before_a_run_row_exists(good, tmp_path):
    folder = broken_copy(good, tmp_path, "no_weights")
    db = tmp_path / "runs.db"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "core.cli", "--db", f"sqlite:///{db}", "train"),
            *(str(TINY_RECIPE), "--model", str(folder)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"rlstudio: error: {folder} has no weights: expected model.safetensors or "
        "pytorch_model.bin (or a sharded model's .index.json and its shards) beside config.json"
    ]
    if db.exists():  # no failed run left behind
        assert sqlite3.connect(db).execute("select count(*) from runs").fetchone() == (0,)
