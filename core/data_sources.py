"""Rows of a prompt set from where a user keeps them: a .jsonl, .csv or .txt file (read
here, with errors naming the line), or anything the `datasets` library reads: a .json or
.parquet file, or a folder saved with `Dataset.save_to_disk` (a `DatasetDict` gives one
split).

`datasets` is imported only for those (its import alone takes seconds), offline, with its
progress bars off, its tables kept in memory and its cache in a temporary folder that is
removed afterwards: nothing is left under ~/.cache.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

FILE_TYPES = (".jsonl", ".json", ".csv", ".txt", ".parquet")
_DATASETS_TYPES = {".json": "json", ".parquet": "parquet"}


class DataError(ValueError):
    """A prompt set that cannot be used; the message names the file and the line."""


def read_rows(path: Path, text_column: str, split: str) -> list[dict]:
    """Every row of `path` as a dict; `text_column` names the column of a .txt file's lines,
    `split` the split of a saved `DatasetDict`."""
    if path.is_dir():
        return _rows_saved(path, split)
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            return rows_jsonl(path)
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as fh:
                return list(csv.DictReader(fh))
        if suffix == ".txt":
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            return [{text_column: line.strip()} for line in lines if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    if suffix in _DATASETS_TYPES:
        return _rows_builder(path, _DATASETS_TYPES[suffix])
    raise DataError(
        f"{path}: unsupported prompt file type {suffix or '(none)'}; use "
        f"{', '.join(FILE_TYPES)} or a folder saved with Dataset.save_to_disk"
    )


def rows_jsonl(path: Path) -> list[dict]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(
                f"{path} line {lineno}: expected a JSON object, got {type(row).__name__}"
            )
        rows.append(row)
    return rows


def _datasets() -> Any:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # a prompt file never needs the hub
    try:
        import datasets
    except ImportError:  # the desktop bundle leaves it out (with pyarrow, ~200 MB)
        raise DataError(
            ".json, .parquet files and saved data set folders need the `datasets` package, "
            "which this installation lacks: convert the set to .jsonl or .csv, or use "
            "`pip install datasets`"
        ) from None

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _rows_builder(path: Path, builder: str) -> list[dict]:
    datasets = _datasets()
    with tempfile.TemporaryDirectory(prefix="rlstudio-datasets-") as cache:
        try:
            table = datasets.load_dataset(
                builder,
                data_files=str(path),
                split="train",
                keep_in_memory=True,
                cache_dir=cache,
            )
        except Exception as exc:  # datasets and pyarrow raise many kinds for a bad file
            raise DataError(f"{path}: not a readable {builder} file ({_first_line(exc)})") from None
        return table.to_list()


def _rows_saved(path: Path, split: str) -> list[dict]:
    datasets = _datasets()
    try:
        saved = datasets.load_from_disk(str(path), keep_in_memory=True)
    except FileNotFoundError:
        raise DataError(
            f"{path}: a folder, but not one saved with Dataset.save_to_disk "
            "(no dataset_info.json / dataset_dict.json in it)"
        ) from None
    except Exception as exc:
        raise DataError(f"{path}: the saved dataset cannot be read ({_first_line(exc)})") from None
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise DataError(
                f"{path}: no split {split!r} (its splits: {', '.join(saved) or 'none'}); "
                "set data.split"
            )
        saved = saved[split]
    with contextlib.suppress(AttributeError):
        return saved.to_list()
    raise DataError(f"{path}: holds a {type(saved).__name__}, not a dataset of rows")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
