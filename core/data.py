"""Prompt sets: the bundled ones in assets/prompts, a user's file (.jsonl, .json, .csv,
.txt, .parquet) or a folder saved with `datasets`' `save_to_disk`.

A prompt is text or, as in TRL's conversational format, a chat: a list of
`{"role", "content"}` messages, which goes straight to the tokenizer's chat template.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import DataConfig, RunConfig
from core.data_sources import FILE_TYPES, DataError, read_rows, rows_jsonl
from core.paths import assets_dir

Chat = tuple[dict[str, str], ...]


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: tuple[str, ...]  # as text (a chat's messages one per line): to show and store
    columns: dict[str, tuple] = field(default_factory=dict)  # extra columns, aligned with prompts
    chats: tuple[Chat, ...] | None = None  # the messages, when the prompts are chats

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices) -> tuple[list[Any], dict[str, list]]:
        """The prompts as the data holds them (text, or message lists) and their columns."""
        idx = list(indices)
        source = self.chats if self.chats is not None else self.prompts
        return [_plain(source[i]) for i in idx], {
            k: [v[i] for i in idx] for k, v in self.columns.items()
        }


def _plain(prompt: Any) -> Any:
    return [dict(m) for m in prompt] if isinstance(prompt, tuple) else prompt


def is_chat(prompt: Any) -> bool:
    return isinstance(prompt, (list, tuple))


def chat_text(prompt: Any) -> str:
    """A prompt as text: a chat as "role: content" lines (a lone user message: its content)."""
    if not is_chat(prompt):
        return prompt
    if len(prompt) == 1 and prompt[0].get("role") == "user":
        return prompt[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def as_chats(prompts: Sequence[Any], completions: Sequence[str]) -> tuple[list, list]:
    """Prompts and completions as TRL hands them to a reward: with chat prompts each
    completion is `[{"role": "assistant", "content": text}]`; text stays text."""
    if not prompts or not is_chat(prompts[0]):
        return list(prompts), list(completions)
    return (
        [[dict(m) for m in p] for p in prompts],
        [[{"role": "assistant", "content": c}] for c in completions],
    )


def bundled_prompt_sets() -> dict[str, Path]:
    return {p.stem: p for p in sorted((assets_dir() / "prompts").glob("*.jsonl"))}


def prompt_source(cfg: DataConfig, base_dir: str | Path = "") -> Path:
    """The file or folder `cfg.prompts` names (a bundled set's file for its name)."""
    bundled = bundled_prompt_sets()
    if cfg.prompts in bundled:
        return bundled[cfg.prompts]
    path = Path(cfg.prompts).expanduser()
    if not path.is_absolute() and base_dir:
        path = Path(base_dir) / path
    if not path.exists():
        raise DataError(
            f"prompt set not found: {cfg.prompts} (bundled sets: "
            f"{', '.join(bundled) or 'none'}; or give a {', '.join(FILE_TYPES)} file "
            "or a folder saved with Dataset.save_to_disk)"
        )
    return path


def load_prompts(cfg: DataConfig, base_dir: str | Path = "") -> PromptSet:
    """Read the configured prompt set; empty sets and missing columns are errors."""
    path = prompt_source(cfg, base_dir)
    rows = read_rows(path, cfg.prompt_column, cfg.split)
    if not rows:
        raise DataError(f"{path}: the prompt set is empty")
    chats = [_checked_prompt(path, i, row, cfg.prompt_column) for i, row in enumerate(rows, 1)]
    kinds = {isinstance(c, tuple) for c in chats}
    if len(kinds) > 1:
        first_text = next(i for i, c in enumerate(chats, 1) if isinstance(c, str))
        first_chat = next(i for i, c in enumerate(chats, 1) if isinstance(c, tuple))
        raise DataError(
            f"{path}: column {cfg.prompt_column!r} mixes text (row {first_text}) and chat "
            f"messages (row {first_chat}); use one kind for the whole set"
        )
    extra = sorted({k for row in rows for k in row} - {cfg.prompt_column})
    columns = {k: tuple(row.get(k) for row in rows) for k in extra}
    texts = tuple(chat_text(c) for c in chats)
    conversational = kinds == {True}
    return PromptSet(path.stem, texts, columns, tuple(chats) if conversational else None)


def _checked_prompt(path: Path, i: int, row: dict, column: str) -> str | Chat:
    """The row's prompt: non-empty text, or a list of {"role", "content"} messages."""
    value = row.get(column)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (list, tuple)) and value:
        for j, m in enumerate(value):
            ok = isinstance(m, dict) and all(isinstance(m.get(k), str) for k in ("role", "content"))
            if not ok:
                raise DataError(
                    f"{path} row {i}: message {j} of column {column!r} is not a "
                    f'{{"role": ..., "content": ...}} pair of strings: {str(m)[:80]}'
                )
        return tuple({"role": m["role"], "content": m["content"]} for m in value)
    raise DataError(
        f"{path} row {i}: no text in column {column!r} (columns: {', '.join(row) or 'none'}); "
        'a prompt is text or a list of {"role", "content"} chat messages'
    )


def format_prompt(tokenizer, prompt: str | Sequence[dict], chat_template: str) -> str:
    """The text the model is given. A text prompt is wrapped in the model's chat template
    when asked (auto: when it has one); chat messages go to the template as they are, or,
    with no template to use (off, or auto on a model without one), become plain
    "role: content" lines ending in "assistant:"."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat_template == "on" and not has_template:
        raise DataError("data.chat_template = 'on' but this model's tokenizer has no chat template")
    use = chat_template == "on" or (chat_template == "auto" and has_template)
    if not is_chat(prompt):
        messages = [{"role": "user", "content": prompt}] if use else None
    else:
        messages = [dict(m) for m in prompt]
        if not use:
            return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    if messages is None:
        return prompt
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


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
    rows = rows_jsonl(path)
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
