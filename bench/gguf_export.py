"""The GGUF export of the default model: its time and size per `--outtype`, and the file
checked the way a user would: llama.cpp's metadata read with `gguf.GGUFReader` (the chat
template among it), and the model loaded back by transformers (`gguf_file=`) against the
`hf` export's logits on a chat-formatted prompt.

    python bench/gguf_export.py    # f16 and q8_0; JSON to bench/results/gguf_export.json

It trains one short step of the bundled SmolLM2-135M-Instruct first (an export needs a
run with a checkpoint)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "gguf_export.json"


def _train(db: str) -> None:
    from core.config import load_config, with_overrides
    from core.runner import start_run
    from core.store import Store

    cfg = load_config(ROOT / "assets" / "recipes" / "sentiment_ppo.toml")
    overrides = {"training.steps": 1, "training.batch_size": 2, "generation.max_new_tokens": 8}
    overrides["data.heldout_fraction"] = 0.0  # no evaluation: only the checkpoint matters
    with Store(db) as store:
        start_run(with_overrides(cfg, overrides), store, name="gguf bench")


def _logits(model, tokenizer, text: str):
    import torch

    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.eval()(ids).logits[0]


def _check(gguf_file: Path, hf: Path) -> dict:
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reader = gguf.GGUFReader(gguf_file)
    field = reader.fields.get("tokenizer.chat_template")
    template = bytes(field.parts[field.data[0]]).decode() if field else ""
    tokenizer = AutoTokenizer.from_pretrained(hf)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Tell me a short story."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    expected = _logits(
        AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32), tokenizer, text
    )
    back = AutoModelForCausalLM.from_pretrained(
        gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32
    )
    got = _logits(back, tokenizer, text)
    return {
        "chat_template_in_gguf": template == tokenizer.chat_template,
        "tokens_compared": int(expected.shape[0]),
        "max_abs_logit_diff": float((got - expected).abs().max()),
        "logit_range": float(expected.abs().max()),
        "same_top_token_frac": float((got.argmax(-1) == expected.argmax(-1)).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outtypes", nargs="+", default=["f16", "q8_0"])
    args = parser.parse_args()
    from core.exports import export_run_model
    from core.store import Store

    result: dict = {"model": "smollm2-135m-instruct", "cpus": os.cpu_count(), "cases": {}}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/runs.db"
        _train(db)
        with Store(db) as store:
            start = time.perf_counter()
            hf, _step = export_run_model(store, 1, Path(tmp) / "hf")
            result["hf_export_s"] = time.perf_counter() - start
            result["hf_mb"] = sum(f.stat().st_size for f in hf.iterdir()) / 2**20
            for outtype in args.outtypes:
                start = time.perf_counter()
                out, _step = export_run_model(
                    store, 1, Path(tmp) / outtype, format="gguf", outtype=outtype
                )
                seconds = time.perf_counter() - start
                load.append(os.getloadavg()[0])
                case = {"export_s": seconds, "mb": out.stat().st_size / 2**20}
                case |= _check(out, hf)
                result["cases"][outtype] = case
                print(outtype, json.dumps(case), file=sys.stderr)
    result["load_average_1m"] = {"min": min(load), "max": max(load)}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
