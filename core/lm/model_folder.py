"""A light look at a local Hugging Face model folder before anything is loaded (no weights
read): what is missing or broken, said in one line, so that a run is refused before its row
exists rather than failing at load time."""

from __future__ import annotations

import json
from pathlib import Path

from core.lm.device import ModelError

# What `from_pretrained` reads, in its order of preference.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def check_model_folder(folder: Path) -> None:
    """Raise ModelError saying what is wrong with a folder that has a config.json."""
    _check_config(folder)
    for weights in _weight_files(folder):
        if weights.suffix == ".safetensors":
            _check_safetensors(weights)
    if not any(_is_tokenizer_file(p.name) for p in folder.iterdir()):
        raise ModelError(
            f"{folder} has no tokenizer: expected tokenizer.json or tokenizer_config.json "
            "beside config.json (save the tokenizer there too: tokenizer.save_pretrained)"
        )


def _check_config(folder: Path) -> None:
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{path} is not valid JSON ({exc}): the folder's config is broken"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object: the folder's config is broken")
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(folder)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{path}: transformers cannot read it: {first}") from None


def _weight_files(folder: Path) -> list[Path]:
    """The weight files `from_pretrained` would read (shards listed in an index must exist)."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return [path]
        try:
            shards = sorted(
                set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values())
            )
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise ModelError(f"{path} is not a valid index of weight shards") from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ModelError(
                f"{folder} is missing the weight shard {missing[0]}{more} (listed in {name})"
            )
        return [folder / s for s in shards]
    raise ModelError(
        f"{folder} has no weights: expected model.safetensors or pytorch_model.bin "
        "(or a sharded model's .index.json and its shards) beside config.json"
    )


def _check_safetensors(path: Path) -> None:
    """The header only: a truncated or overwritten file says so here."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(
            f"{path} is damaged ({first}): copy or download the model folder again"
        ) from None


def _is_tokenizer_file(name: str) -> bool:
    return name.startswith(("tokenizer", "vocab")) or name.endswith((".model", ".tiktoken"))
