"""Prompt sets: the bundled ones in assets/prompts and a user's .jsonl, .csv or .txt."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.config import DataConfig, RunConfig
from core.paths import assets_dir


class DataError(ValueError):
    """A prompt set that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[str, ...]
    columns: dict[str, tuple] = field(default_factory=dict)  # extra columns, aligned with prompts

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices) -> tuple[list[str], dict[str, list]]:
        idx = list(indices)
        return [self.prompts[i] for i in idx], {
            k: [v[i] for i in idx] for k, v in self.columns.items()
        }


def bundled_prompt_sets() -> dict[str, Path]:
    return {p.stem: p for p in sorted((assets_dir() / "prompts").glob("*.jsonl"))}


def _rows_jsonl(path: Path) -> list[dict]:
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


def _rows_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _rows_txt(path: Path, column: str) -> list[dict]:
    return [
        {column: line.strip()}
        for line in path.read_text(encoding="utf-8-sig").splitlines()
        if line.strip()
    ]


def load_prompts(cfg: DataConfig, base_dir: str | Path = "") -> PromptSet:
    """Read the configured prompt set; empty sets and missing columns are errors."""
    bundled = bundled_prompt_sets()
    if cfg.prompts in bundled:
        path = bundled[cfg.prompts]
    else:
        path = Path(cfg.prompts).expanduser()
        if not path.is_absolute() and base_dir:
            path = Path(base_dir) / path
        if not path.is_file():
            raise DataError(
                f"prompt set not found: {cfg.prompts} (bundled sets: "
                f"{', '.join(bundled) or 'none'}; or give a .jsonl, .csv or .txt file)"
            )
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = _rows_jsonl(path)
        elif suffix == ".csv":
            rows = _rows_csv(path)
        elif suffix == ".txt":
            rows = _rows_txt(path, cfg.prompt_column)
        else:
            raise DataError(
                f"{path}: unsupported prompt file type {suffix or '(none)'}; "
                "use .jsonl, .csv or .txt"
            )
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    if not rows:
        raise DataError(f"{path}: the prompt set is empty")
    for i, row in enumerate(rows, 1):
        text = row.get(cfg.prompt_column)
        if not isinstance(text, str) or not text.strip():
            raise DataError(
                f"{path} row {i}: no text in column {cfg.prompt_column!r} "
                f"(columns: {', '.join(row) or 'none'})"
            )
    extra = sorted({k for row in rows for k in row} - {cfg.prompt_column})
    columns = {k: tuple(row.get(k) for row in rows) for k in extra}
    return PromptSet(path.stem, tuple(row[cfg.prompt_column] for row in rows), columns)


def format_prompt(tokenizer, text: str, chat_template: str) -> str:
    """Wrap a prompt in the model's chat template when asked (auto: when it has one)."""
    use = chat_template == "on" or (
        chat_template == "auto" and getattr(tokenizer, "chat_template", None)
    )
    if not use:
        return text
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("data.chat_template = 'on' but this model's tokenizer has no chat template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


class PromptSampler:
    """Batches of prompt indices: a seeded permutation per pass, so step N's batch is the
    same after a resume without storing any data-loader state."""

    def __init__(self, size: int, batch_size: int, seed: int, shuffle: bool) -> None:
        self.size, self.batch_size, self.seed, self.shuffle = size, batch_size, seed, shuffle

    def _order(self, epoch: int) -> list[int]:
        import numpy as np

        if not self.shuffle:
            return list(range(self.size))
        return np.random.default_rng([self.seed, epoch]).permutation(self.size).tolist()

    def indices(self, step: int) -> list[int]:
        """Prompt indices for 1-based `step`."""
        start = (step - 1) * self.batch_size
        out = []
        while len(out) < self.batch_size:
            epoch, offset = divmod(start + len(out), self.size)
            order = self._order(epoch)
            take = min(self.batch_size - len(out), self.size - offset)
            out.extend(order[offset : offset + take])
        return out


def load_rated(path: str | Path, base_dir: str | Path = "") -> list[dict]:
    """A rated data set for offline RL: .jsonl rows with prompt, completion and a numeric
    reward. Errors name the file and the line."""
    path = Path(path).expanduser()
    if not path.is_absolute() and base_dir:
        path = Path(base_dir) / path
    if not path.is_file():
        raise DataError(f"rated data set not found: {path}")
    rows = _rows_jsonl(path)
    if not rows:
        raise DataError(f"{path}: the rated data set is empty")
    for lineno, row in enumerate(rows, 1):
        missing = [k for k in ("prompt", "completion", "reward") if k not in row]
        if missing:
            raise DataError(f"{path} row {lineno}: missing {', '.join(missing)}")
        reward = row["reward"]
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or reward != reward:
            raise DataError(f"{path} row {lineno}: reward must be a number, got {reward!r}")
    return rows


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """`cfg` with its prompt file, rated data set and reward files as absolute paths: a
    recipe saved elsewhere (a user's recipe, the one a multi-process launch reads) must
    still find them. Bundled prompt sets keep their names."""
    data, ilql = cfg.data, cfg.ilql
    if data.prompts not in bundled_prompt_sets():
        data = dataclasses.replace(data, prompts=str(cfg.resolve_path(data.prompts).resolve()))
    if ilql.dataset:
        ilql = dataclasses.replace(ilql, dataset=str(cfg.resolve_path(ilql.dataset).resolve()))
    components = tuple(
        dataclasses.replace(
            c, params={**c.params, "path": str(cfg.resolve_path(c.params["path"]).resolve())}
        )
        if c.kind == "python" and c.params.get("path")
        else c
        for c in cfg.reward.components
    )
    reward = dataclasses.replace(cfg.reward, components=components)
    return dataclasses.replace(cfg, data=data, ilql=ilql, reward=reward)
