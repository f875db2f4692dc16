"""Checkpoints: everything needed to carry a run on exactly where it was.

A checkpoint is a folder `step_N/` holding `model/` (a plain transformers folder, or
the LoRA adapter), the trainer state (value head, an algorithm's own heads, optimizer,
scheduler, RNG states, step, algorithm state: see `state`), and last `manifest.json`
(each file's size and sha256: see `verify`). It is written under a temporary name and
renamed, so a crash mid-write never leaves a half checkpoint that looks whole; the next
start of the run removes such a leftover (`remove_partial`).
Pruning only ever deletes checkpoints the run itself saved or recorded, never a folder
merely found in its directory.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.algorithms.base import HEADS_STATE_KEY
from core.lm.policy import Policy
from core.training.checkpoint.manifest import write_manifest
from core.training.checkpoint.state import (
    StateUnreadable,
    has_trainer_state,
    read_trainer_state,
    write_trainer_state,
)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: Path,
    step: int,
    policy: Policy,
    tokenizer,
    trainer_state: dict,
    weights: dict | None = None,
) -> Path:
    """Write step_N atomically (see `prune` for dropping older ones).

    `weights`: the LM's whole state dict when the live model is sharded (FSDP)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".step_{step}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        policy.lm.save_pretrained(tmp / "model", state_dict=weights)
        tokenizer.save_pretrained(tmp / "model")
        state = dict(
            trainer_state,
            step=step,
            rng=rng_state(),
            v_head=policy.v_head.state_dict() if policy.v_head is not None else None,
            **{HEADS_STATE_KEY: policy.heads.state_dict() if policy.heads is not None else None},
        )
        write_trainer_state(state, tmp)
        write_manifest(tmp, step)  # last: a folder without it is incomplete
    except BaseException:  # a full disk, say: drop the partial copy, keep the older ones
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def prune(owned: dict[int, Path], keep: int) -> dict[int, Path]:
    """Deletes all but the `keep` newest of `owned` ({step: folder}: the checkpoints this
    run saved or recorded) and returns those kept. Nothing else is touched."""
    steps = sorted(owned)
    for step in steps[:-keep] if keep > 0 else steps:
        shutil.rmtree(owned[step], ignore_errors=True)
    return {step: owned[step] for step in steps[-keep:]} if keep > 0 else {}


def remove_partial(root: Path) -> list[tuple[str, int]]:
    """Removes the `.step_N.tmpPID` folders a save cut short (a SIGKILL, a power cut) left
    in a run's folder; returns (name, bytes) of each. Call it only while holding the run
    (no other process can be saving into `root`)."""
    removed = []
    for tmp in sorted(root.glob(".step_*.tmp*")) if root.is_dir() else []:
        size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append((tmp.name, size))
    return removed


def load_checkpoint(path: Path, policy: Policy) -> dict:
    """Load weights into `policy` and return the trainer state (optimizer etc. for the caller)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not has_trainer_state(path):
        raise StateUnreadable(f"no checkpoint at {path}: it holds no trainer state")
    model_dir = path / "model"
    if policy.is_lora:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(policy.lm, load_file(model_dir / "adapter_model.safetensors"))
    else:
        state = {}
        for file in sorted(model_dir.glob("*.safetensors")):
            state.update(load_file(file))
        missing, unexpected = policy.lm.load_state_dict(state, strict=False)
        tied = {"lm_head.weight"} if policy.lm.config.tie_word_embeddings else set()
        if unexpected or set(missing) - tied:
            raise RuntimeError(
                f"checkpoint {path} does not match the model: missing "
                f"{sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]}"
            )
        policy.lm.tie_weights()
    trainer_state = read_trainer_state(path)
    for module, key in ((policy.v_head, "v_head"), (policy.heads, HEADS_STATE_KEY)):
        if module is not None and trainer_state.get(key) is not None:
            module.load_state_dict(trainer_state[key])
    return trainer_state


def export_model(
    checkpoint: Path,
    out: Path,
    base_model: str,
    seed: int = 0,
    extras: Callable[[dict, Path], None] | None = None,
) -> Path:
    """A folder that plain transformers loads: LoRA adapters are merged into the base
    (loaded the way the run loaded it, so tiny-random and .gguf bases work too).
    `extras(trainer_state, out)` adds what the algorithm's export needs besides."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(checkpoint) / "model"
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        from core.lm.sources import load_lm

        base, _tokenizer, _source = load_lm(base_model, seed=seed)
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    state = read_trainer_state(Path(checkpoint))
    if extras is not None:
        extras(state, out)
    return out
