"""A LoRA run's adapter as the peft folder `AutoPeftModelForCausalLM` loads: the adapter's
weights and config, the tokenizer, and `base_model_name_or_path` pointing at a base peft
can load (the model folder the run started from, a hub id, or for `tiny-random`, which
has no folder, the base model saved beside the adapter)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.errors import RunStateError

BASE_FOLDER = "base_model"


def export_adapter(model_dir: Path, out: Path, base_model: str, run_id: int) -> Path:
    """Copies the checkpoint's adapter (`model_dir`: a checkpoint's `model/`) into `out`."""
    config_file = model_dir / "adapter_config.json"
    if not config_file.is_file():
        raise RunStateError(
            f"run {run_id} trained every weight (model.lora_r = 0): it has no adapter to "
            "export; --format hf or gguf writes the whole model"
        )
    out.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = _base(base_model, out)
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


def _base(name: str, out: Path) -> str:
    from core.lm.sources import TINY_RANDOM, load_lm, resolve_source

    if name != TINY_RANDOM:
        return resolve_source(name)  # a local folder (a .gguf's converted copy) or a hub id
    model, tokenizer, _source = load_lm(name)
    model.save_pretrained(out / BASE_FOLDER)
    tokenizer.save_pretrained(out / BASE_FOLDER)
    return str((out / BASE_FOLDER).resolve())
