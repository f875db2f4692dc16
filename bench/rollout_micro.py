"""Decoding alone, ours against transformers' generate() (what TRL's trainers call), on one
batch of the bundled default model: a change to the sampling loop judged in a minute.

    python bench/rollout_micro.py [--reps 5] [--prompts 2] [--generations 4] [--tokens 32]
    python bench/rollout_micro.py --loads 0 1 --configs default passive threads1 avx2
    python bench/rollout_micro.py --profile ours --loads 1   # py-spy's top native frames

Each (config, load) is a fresh process (the OpenMP and oneDNN settings are read once, at
import) beside `load` busy processes (bench/cpu_load.py). In it the three samplers take
turns, `--reps` times each after a warm-up, on the same prompts:
- ours: our loop (core.generation.sampler) as a run samples: on the threads the cores
  left free allow (core.lm.cpu_threads), over oneDNN-packed weights where they pay;
- ours_packed: our loop over packed weights on torch's thread count, on any CPU (the
  engine before it chose per machine);
- ours_plain: our loop over the plain weights (torch's dense linear), torch's threads;
- generate: transformers' generate(), each prompt repeated group-size times, as TRL does.
Reports the median seconds per batch and new tokens per second; writes
bench/results/rollout_micro.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from children import run_child
from cpu_load import AVX2_ENV, hogs, machine_facts

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# The knobs that might matter when the cores are shared: OpenMP's spin-wait at the
# barrier of every parallel region (each linear of every decode step), the thread count,
# and the kernels of an AVX2-only CPU.
CONFIGS: dict[str, dict] = {
    "default": {"env": {}},
    "passive": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}},
    "threads1": {"env": {}, "threads": 1},
    "avx2": {"env": AVX2_ENV},
    "avx2_passive": {"env": {**AVX2_ENV, "OMP_WAIT_POLICY": "PASSIVE"}},
}
SAMPLERS = ("ours", "ours_packed", "ours_plain", "generate")


def _batch(s: dict):
    from core.config import load_config
    from core.data import format_prompt, load_prompts
    from core.lm.sources import load_lm

    cfg = load_config(ROOT / "assets" / "recipes" / "grpo_sentiment.toml")
    lm, tokenizer, _ = load_lm(cfg.model.name, seed=0)
    lm.eval()
    prompt_set = load_prompts(cfg.data, cfg.base_dir)
    texts = [
        format_prompt(tokenizer, prompt_set.prompts[i], cfg.data.chat_template)
        for i in range(s["prompts"])
        for _ in range(s["generations"])
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    gen = dataclasses.replace(
        cfg.generation, max_new_tokens=s["tokens"], temperature=1.0, top_k=0, top_p=1.0
    )
    return lm, tokenizer, enc, gen


def _samplers(lm, tokenizer, enc, gen):
    import torch

    from core.generation.rollout import _end_ids
    from core.generation.sampler import sample
    from core.lm import packed_linear
    from core.lm.cpu_threads import CoreWatch, torch_threads

    ends = _end_ids(tokenizer, lm)
    rows = enc["input_ids"].shape[0]
    watch = CoreWatch()  # as a run measures the cores before each rollout
    always = packed_linear.float32_unpacked_reason

    def loop(packed: bool, threads: int):
        pack = packed_linear.packed_linears(lm, rows, torch.float32)
        with pack if packed else contextlib.nullcontext(), torch_threads(threads):
            ids = enc["input_ids"]
            return sample(lm, ids, enc["attention_mask"], gen, ends, tokenizer.pad_token_id)

    def forced_packing():  # the packed path on any CPU, as before the per-machine choice
        packed_linear.float32_unpacked_reason = lambda *_: None
        try:
            return loop(True, torch.get_num_threads())
        finally:
            packed_linear.float32_unpacked_reason = always

    def generate():
        return lm.generate(
            **enc,
            do_sample=True,
            max_new_tokens=gen.max_new_tokens,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            pad_token_id=tokenizer.pad_token_id,
        )

    return {
        "ours": lambda: loop(True, watch.threads()[0]),  # packs only where it pays
        "ours_packed": forced_packing,
        "ours_plain": lambda: loop(False, torch.get_num_threads()),
        "generate": generate,
    }


def child(s: dict) -> dict:
    import torch

    from core.generation.rollout import _end_ids, response_mask

    if s.get("threads"):
        torch.set_num_threads(s["threads"])
    torch.manual_seed(0)
    lm, tokenizer, enc, gen = _batch(s)
    ends, prompt_len = _end_ids(tokenizer, lm), enc["input_ids"].shape[1]
    samplers = _samplers(lm, tokenizer, enc, gen)
    if s.get("only"):  # --profile: one sampler, the others not run
        samplers = {s["only"]: samplers[s["only"]]}
    times: dict[str, list] = {name: [] for name in samplers}
    tokens: dict[str, list] = {name: [] for name in samplers}
    with torch.no_grad():
        for name in samplers:  # warm-up: first calls allocate and pick kernels
            samplers[name]()
        for _ in range(s["reps"]):
            for name in samplers:  # take turns, so drift in load hits each alike
                t0 = time.perf_counter()
                out = samplers[name]()
                times[name].append(time.perf_counter() - t0)
                mask, _ = response_mask(out[:, prompt_len:], ends)
                tokens[name].append(int(mask.sum()))
    if s.get("maps"):  # --profile: which library each native address lies in
        Path(s["maps"]).write_text(Path("/proc/self/maps").read_text())
    return {
        "machine": machine_facts(s["load"]),
        "samplers": {
            name: {
                "s_median": statistics.median(times[name]),
                "s": times[name],
                "tokens_per_s": statistics.median(t / d for t, d in zip(tokens[name], times[name])),
            }
            for name in samplers
        },
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--loads", type=int, nargs="+", default=[0, 1])
    p.add_argument("--configs", nargs="+", default=["default", "passive"], choices=CONFIGS)
    p.add_argument("--out", default="rollout_micro.json")
    p.add_argument("--profile", choices=SAMPLERS, help="py-spy --native over this sampler only")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    base = {k: getattr(args, k) for k in ("reps", "prompts", "generations", "tokens")}
    if args.profile:
        return profile(args, base)
    rows = []
    for name in args.configs:
        for load in args.loads:
            c = CONFIGS[name]
            s = {**base, "load": load, "threads": c.get("threads")}
            print(f"{name}, load {load}...", file=sys.stderr, flush=True)
            with hogs(load):
                result = run_child(__file__, [json.dumps(s)], f"{name} load {load}", c["env"])
            if result:
                rows.append({"config": name, "env": c["env"], **s, **result})
    _print(rows)
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "settings": base}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps({**report, "rows": rows}, indent=2))
    return 0


def profile(args, base: dict) -> int:
    """py-spy (native frames) over one sampler's reps beside the load; the top frames by
    own samples, and the share of all samples in OpenMP's barrier wait."""
    from profile_frames import top_frames

    for name in args.configs:
        c = CONFIGS[name]
        s = {**base, "load": args.loads[0], "threads": c.get("threads"), "only": args.profile}
        with tempfile.TemporaryDirectory() as tmp, hogs(s["load"]):
            raw, s["maps"] = Path(tmp) / "profile.txt", str(Path(tmp) / "maps")
            spy = Path(sys.executable).with_name("py-spy")  # the venv's, else on PATH
            cmd = [
                str(spy) if spy.exists() else "py-spy",
                "record",
                "--rate",
                "25",  # native unwinding at py-spy's 100/s starves 2 busy cores
                "--native",
                "--format",
                "raw",
                "-o",
                str(raw),
                "--",
            ]
            cmd += [sys.executable, __file__, "--child", json.dumps(s)]
            env = {**os.environ, **c["env"]}
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
            print(f"## {args.profile}, {name}, load {s['load']}")
            maps = Path(s["maps"]).read_text()
            for frame, share in top_frames(raw.read_text(), 12, maps):
                print(f"{share:6.1%}  {frame}")
    return 0


def _print(rows: list[dict]) -> None:
    print("| config | load | ours s | ours_packed s | ours_plain s | generate s | ours/generate |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s = {k: v["s_median"] for k, v in r["samplers"].items()}
        print(
            f"| {r['config']} | {r['load']} | {s['ours']:.2f} | {s['ours_packed']:.2f} "
            f"| {s['ours_plain']:.2f} | {s['generate']:.2f} | {s['generate'] / s['ours']:.2f}x |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
