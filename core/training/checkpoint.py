"""Checkpoints: everything needed to carry a run on exactly where it was.

A checkpoint is a folder `step_N/` holding `model/` (a plain transformers folder, or
the LoRA adapter) and `trainer_state.pt` (value head, optimizer, scheduler, RNG
states, step, algorithm state). It is written under a temporary name and renamed,
so a crash mid-write never leaves a half checkpoint that looks whole.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.lm.policy import Policy

STATE_FILE = "trainer_state.pt"


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
    keep: int = 2,
    weights: dict | None = None,
) -> Path:
    """Write step_N atomically and drop all but the `keep` newest checkpoints.

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
            ilql_heads=(policy.ilql_heads.state_dict() if policy.ilql_heads is not None else None),
        )
        torch.save(state, tmp / STATE_FILE)
    except BaseException:  # a full disk, say: drop the partial copy, keep the older ones
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under root, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step_*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def load_checkpoint(path: Path, policy: Policy) -> dict:
    """Load weights into `policy` and return the trainer state (optimizer etc. for the caller)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
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
    trainer_state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    for name in ("v_head", "ilql_heads"):
        module = getattr(policy, name)
        if module is not None and trainer_state.get(name) is not None:
            module.load_state_dict(trainer_state[name])
    return trainer_state


def export_model(
    checkpoint: Path, out: Path, base_model: str, seed: int = 0, ilql_beta: float = 1.0
) -> Path:
    """A folder that plain transformers loads: LoRA adapters are merged into the base
    (loaded the way the run loaded it, so tiny-random and .gguf bases work too)."""
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
    state = torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=False)
    if state.get("ilql_heads") is not None:
        _export_ilql_heads(state["ilql_heads"], out, ilql_beta)
    return out


ILQL_NOTE = """# ILQL heads

`ilql_heads.safetensors` holds the Q, target-Q and V heads trained with this model
(RL Studio's `core.algorithms.ilql.ILQLHeads`; hidden size {hidden}, {n_qs} Q head(s)).
The language model alone samples like the policy before the heads' adjustment. To decode
as ILQL does, at every step add beta * (min over target Q heads - V) to the logits:

```python
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from core.algorithms.ilql import ILQLHeads, ilql_decode_logits

lm = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")
heads = ILQLHeads(lm.config.hidden_size, lm.config.vocab_size, two_qs={two_qs})
heads.load_state_dict(load_file("THIS_FOLDER/ilql_heads.safetensors"))
out = lm(input_ids, output_hidden_states=True)
_qs, target_qs, v = heads(out.hidden_states[-1][:, -1:])
logits = ilql_decode_logits(out.logits[:, -1:], target_qs, v, beta={beta})
```

`core.algorithms.ilql.decoding.ilql_generate` is the full sampling loop (KV cache,
top-k / top-p, EOS).
"""


def _export_ilql_heads(heads_state: dict, out: Path, beta: float) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in heads_state.items()}, out / "ilql_heads.safetensors")
    n_qs = len({k.split(".")[1] for k in heads_state if k.startswith("q_heads.")})
    hidden = heads_state["v_head.0.weight"].shape[1]
    (out / "ILQL_README.md").write_text(
        ILQL_NOTE.format(hidden=hidden, n_qs=n_qs, two_qs=n_qs == 2, beta=beta)
    )
