"""Our GRPO and RLOO against TRL's GRPOTrainer and RLOOTrainer on the same model and task.

Same model (the bundled default, float32), prompts (grpo_sentiment's, in the same order),
reward (the built-in `sentiment`, in-process on both sides), sampling, batch, learning
rate, KL coefficient, precision, seed and steps. Every run is its own process, so peak memory
is its own; ours and TRL's alternate, so a busy machine slows both alike. Writes
bench/results/vs_trl.json (vs_trl_scaling.json, vs_trl_ppo.json, vs_trl_reward.json; a
_bf16 suffix with --dtype bfloat16) and prints a table.

    python bench/vs_trl.py [--steps 6] [--rounds 1] [--prompts 2] [--generations 4] [--tokens 32]
    python bench/vs_trl.py --dtype bfloat16       # both sides in bf16 autocast (TRL's default)
    python bench/vs_trl.py --sampling-dtype bfloat16  # ours samples from a bf16 copy
    python bench/vs_trl.py --scaling [--steps 3] [--points 4]  # GRPO s/step, batch / length x2
    python bench/vs_trl.py --ppo [--steps 6]                   # our PPO's step, split
    python bench/vs_trl.py --reward --steps 30 --seeds 2 --lr 5e-5  # final models' reward
    python bench/vs_trl.py --reward --steps 30 --seed 2 --seeds 4 --lr 5e-5 --add  # more seeds
    python bench/vs_trl.py --load 1 [--avx2]   # one busy process beside every run; AVX2 kernels
    make bench-trl                                             # installs trl==1.16.0 first

Where the algorithms still differ after matching is said at trl_args().
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from children import run_child
from cpu_load import AVX2_ENV, hogs, machine_facts

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RECIPE = ROOT / "assets" / "recipes" / "grpo_sentiment.toml"
PPO_RECIPE = ROOT / "assets" / "recipes" / "sentiment_ppo.toml"
SCALING_COMPLETIONS = (4, 8, 16, 32)  # at 32 tokens
SCALING_TOKENS = (16, 32, 64, 128)  # at 8 completions
EVAL_SAMPLES, EVAL_SEED = 4, 1234  # --reward: continuations per prompt, their seed
PPO_COLUMNS = ("generation_s", "reference_s", "policy_values_s", "reward_s", "update_s", "step_s")


# ---- our side -------------------------------------------------------------------------------


def our_config(s: dict):
    """grpo_sentiment with the benchmark's settings: one optimiser step per generated batch."""
    from core.config import load_config, with_overrides

    return with_overrides(
        load_config(RECIPE),
        {
            "algorithm.name": s["algorithm"],
            "algorithm.group_size": s["generations"],
            # One pass, one minibatch: one optimiser step per batch, as TRL with
            # num_iterations=1 and no gradient accumulation.
            "algorithm.epochs": 1,
            "algorithm.minibatches": 1,
            "algorithm.kl_coef": s["beta"],
            "algorithm.adaptive_kl": False,
            # "auto": RLOO takes the KL as a summed per-token k1 penalty on the score, as
            # RLOOTrainer does; GRPO as a k3 loss term, as GRPOTrainer does.
            "algorithm.kl_in": "auto",
            "algorithm.kl_estimator": "auto",
            "training.batch_size": s["prompts"],
            "training.steps": s["steps"],
            "training.learning_rate": s["lr"],
            "training.seed": s["seed"],
            "training.checkpoint_every": 0,
            "data.heldout_fraction": 0.0,
            "generation.max_new_tokens": s["tokens"],
            "generation.temperature": 1.0,
            "generation.top_p": 1.0,
            "generation.top_k": 0,
            "model.device": s["device"],
            # Weights stay float32 on both sides; bfloat16 is autocast compute (TRL's bf16=True).
            "model.dtype": s.get("dtype", "float32"),
            "logging.samples_per_step": 0,  # TRL logs no completions either
            "generation.sampler": s.get("sampler", "loop"),
            # ours only (--sampling-dtype): TRL samples from the policy itself
            "generation.sampling_dtype": s.get("sampling_dtype", "float32"),
        },
    )


def ours_steps(s: dict, trained: dict | None = None) -> list[dict]:
    """Per-step timings of our engine, from its own Metrics events. With `trained`, its
    "lm" is the policy's model when the run has ended."""
    import core.training.loop
    import core.training.run
    from core.events import Metrics

    if trained is not None:
        load = core.training.run.load_models

        def keep(*args, **kwargs):
            models = load(*args, **kwargs)
            trained["lm"] = models.policy.lm
            return models

        core.training.run.load_models = keep  # the run looks it up in its module at each call
    n = s["prompts"] * s["generations"]
    rows = []
    for event in core.training.loop.train(our_config(s)):
        if isinstance(event, Metrics):
            v = event.values
            rollout = v["time/rollout_s"] + v["time/reward_s"]  # generation, logprobs, reward
            rows.append(
                {
                    "step": event.step,
                    "step_s": rollout + v["time/update_s"],
                    "rollout_s": rollout,
                    "update_s": v["time/update_s"],
                    "tokens": v["response/length_mean"] * n,  # mask sums: real tokens, EOS included
                    "reward": v["reward/mean"],
                }
            )
    return rows


# ---- TRL's side -----------------------------------------------------------------------------


def step_prompts(s: dict, tokenizer) -> list[str]:
    """Every step's prompts in the order our engine draws them, as the text it tokenizes."""
    from core.data import PromptSampler, format_prompt, load_prompts

    cfg = our_config(s)
    prompt_set = load_prompts(cfg.data, cfg.base_dir)
    sampler = PromptSampler(len(prompt_set), s["prompts"], s["seed"], cfg.data.shuffle)
    texts = [
        format_prompt(tokenizer, prompt_set.prompts[i], cfg.data.chat_template)
        for step in range(1, s["steps"] + 1)
        for i in sampler.indices(step)
    ]
    # TRL tokenizes plain-text prompts with the tokenizer's special tokens, ours without:
    # the token counts are equal only while this tokenizer adds none.
    for text in texts:
        if tokenizer(text)["input_ids"] != tokenizer(text, add_special_tokens=False)["input_ids"]:
            raise SystemExit("the tokenizer adds special tokens: TRL's prompts would be longer")
    return texts


def trl_args(s: dict, out_dir: str) -> dict:
    """TRL settings matching ours. What still differs after matching:

    - GRPO loss: loss_type "grpo" = mean over each completion's tokens, then over completions:
      ours with the same loss_type, exactly. Both add beta * k3 per token inside
      that mean; use_bias_correction_kl=False keeps TRL's k3 unweighted by the ratio, as ours.
    - Old logprobs: with one step per batch TRL uses the current logprobs, detached (ratio 1,
      one policy forward fewer per step); ours scores the batch again after sampling (ratio
      about 1). RLOOTrainer computes them, like ours.
    - RLOO: both subtract beta * summed k1 from the score and use leave-one-out advantages,
      not whitened. TRL's loss is a PPO-clipped sequence ratio (1 on-policy: same gradient);
      ours is plain REINFORCE, -A * sum of logprobs, mean over completions.
    - Advantages (GRPO): (r - group mean) / (group std + 1e-4), unbiased std, both.
      Ours also clips scores to +-reward_clip (no-op for sentiment in [-1, 1]).
    - Reference: a second full copy of the starting weights on both sides (TRL reloads it
      from the folder, ours deep-copies); TRL's forward passes give left-padded rows positions
      counted from the padding, ours skips padding as generate() does.
    - Prompt order: TRL's dataset is our sampler's order, unshuffled, so each step sees the
      same prompts; the samples themselves differ (each side draws its own random numbers).
    """
    common = {
        "output_dir": out_dir,
        "max_steps": s["steps"],
        "seed": s["seed"],
        "use_cpu": s["device"] == "cpu",
        # TRL's default is bf16 (autocast over float32 weights, as ours with model.dtype
        # "bfloat16"); --dtype float32 turns it off on both sides
        "bf16": s.get("dtype", "float32") == "bfloat16",
        "fp16": False,
        "gradient_checkpointing": False,  # TRL's default is on; ours is off
        "model_init_kwargs": {"dtype": "float32"},
        "per_device_train_batch_size": s["prompts"] * s["generations"],
        "gradient_accumulation_steps": 1,
        "steps_per_generation": 1,
        "num_iterations": 1,
        "num_generations": s["generations"],
        "max_completion_length": s["tokens"],
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": None,
        "repetition_penalty": 1.0,
        "learning_rate": s["lr"],
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "optim": "adamw_torch",  # torch's AdamW as ours (TRL's default is the fused kernel)
        "beta": s["beta"],
        "epsilon": 0.2,
        "shuffle_dataset": False,  # the dataset is already in our sampler's order
        "pad_to_multiple_of": None,  # pad prompts to the longest only
        "logging_steps": 1,  # one on_log per step carries that step's reward
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",
        "log_completions": False,
        "disable_tqdm": True,
    }
    if s["algorithm"] == "grpo":
        return {
            **common,
            "loss_type": "grpo",
            "scale_rewards": "group",
            "use_bias_correction_kl": False,
        }
    return {
        **common,
        "normalize_advantages": False,
        "reward_clip_range": (-s["reward_clip"], s["reward_clip"]),
    }


def sync() -> None:
    """Wait for queued GPU work, so a timer stops when the work is done."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def trl_steps(s: dict, trained: dict | None = None) -> list[dict]:
    """Per-step timings of TRL's trainer: a callback times each step, a wrapper its rollout.
    With `trained`, its "lm" is the trained model when the run has ended."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from core.lm.sources import default_model_dir, load_tokenizer
    from core.rewards import BUILTINS

    source = str(default_model_dir())
    tokenizer = load_tokenizer(source)  # ours: same pad token, left padding
    score = BUILTINS["sentiment"](tokenizer=tokenizer)

    def sentiment(prompts, completions, **kwargs):
        return score(prompts, completions)

    rec: dict[str, list] = {"step_s": [], "rollout_s": [], "tokens": [], "reward": []}
    began = [0.0]

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            sync()
            began[0] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            rec["step_s"].append(time.perf_counter() - began[0])

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:  # the end-of-training summary has none
                rec["reward"].append(logs["reward"])

    grpo = s["algorithm"] == "grpo"
    config, trainer_cls = (GRPOConfig, GRPOTrainer) if grpo else (RLOOConfig, RLOOTrainer)
    kwargs = trl_args(s, os.path.join(os.environ["RLSTUDIO_HOME"], "trl"))
    if "activation_checkpointing" in config.__dataclass_fields__:  # its new name, which wins
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    trainer = trainer_cls(
        model=source,
        reward_funcs=sentiment,
        args=config(**kwargs),
        train_dataset=Dataset.from_dict({"prompt": step_prompts(s, tokenizer)}),
        processing_class=tokenizer,
        callbacks=[Timer()],
    )
    trainer.remove_callback(PrinterCallback)  # printing every log is work ours does not do
    generate = trainer._generate_and_score_completions  # generation, ref logprobs, reward

    def timed(inputs):
        sync()
        t0 = time.perf_counter()
        out = generate(inputs)
        rec["tokens"].append(int(out["completion_mask"].sum()))  # real tokens, EOS included
        rec["rollout_s"].append(time.perf_counter() - t0)
        return out

    trainer._generate_and_score_completions = timed
    trainer.train()
    if trained is not None:
        trained["lm"] = trainer.accelerator.unwrap_model(trainer.model)
    return [
        {
            "step": i + 1,
            "step_s": step,
            "rollout_s": rollout,
            "update_s": step - rollout,
            "tokens": tokens,
            "reward": reward,
        }
        for i, (step, rollout, tokens, reward) in enumerate(
            zip(rec["step_s"], rec["rollout_s"], rec["tokens"], rec["reward"], strict=True)
        )
    ]


# ---- our PPO, split -------------------------------------------------------------------------


def ppo_steps(s: dict) -> list[dict]:
    """Our PPO on sentiment_ppo. The engine logs rollout, reward and update only; timers
    wrapped around its scoring pass and the reference split the rollout further."""
    import core.generation.rollout
    from core.config import load_config, with_overrides
    from core.events import Metrics
    from core.training.loop import train

    spent = {"score": 0.0, "reference": 0.0}

    def timer(fn, key):
        def wrapped(*args, **kwargs):
            sync()
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync()
                spent[key] += time.perf_counter() - t0

        return wrapped

    # generate_rollout and _score look these up in their module at each call: the patch takes.
    core.generation.rollout._score = timer(core.generation.rollout._score, "score")
    core.generation.rollout._reference_logits = timer(
        core.generation.rollout._reference_logits, "reference"
    )
    cfg = with_overrides(
        load_config(PPO_RECIPE),
        {
            "training.steps": s["steps"],
            "training.batch_size": 8,  # the split as reported: 8 x 32 tokens
            "training.seed": s["seed"],
            "training.checkpoint_every": 0,
            "data.heldout_fraction": 0.0,
            "model.device": s["device"],
            "model.dtype": s.get("dtype", "float32"),
            "logging.samples_per_step": 0,
        },
    )
    rows = []
    for event in train(cfg):
        if isinstance(event, Metrics):
            v = event.values
            rows.append(
                {
                    "step": event.step,
                    "logged": {k: x for k, x in v.items() if k.startswith("time/")},
                    "generation_s": v["time/rollout_s"] - spent["score"],
                    "reference_s": spent["reference"],
                    # The value head reads the policy's last hidden state: no pass of its own.
                    "policy_values_s": spent["score"] - spent["reference"],
                    "reward_s": v["time/reward_s"],
                    "update_s": v["time/update_s"],
                    "step_s": v["time/rollout_s"] + v["time/reward_s"] + v["time/update_s"],
                    "completions": cfg.training.batch_size * cfg.algorithm.group_size,
                    "max_new_tokens": cfg.generation.max_new_tokens,
                }
            )
            spent.update(score=0.0, reference=0.0)
    return rows


# ---- one run per process --------------------------------------------------------------------


def peak_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def final_reward(lm, s: dict) -> dict:
    """The expected reward of a model, measured the same way for both sides: `EVAL_SAMPLES`
    sampled continuations (the runs' sampling settings, a fixed seed) of every prompt of
    the recipe's set, scored by the same reward; float32, in eval mode."""
    import torch

    from core.data import format_prompt, load_prompts
    from core.lm.sources import default_model_dir, load_tokenizer
    from core.rewards import BUILTINS

    cfg = our_config(s)
    tokenizer = load_tokenizer(str(default_model_dir()))
    prompts = [
        format_prompt(tokenizer, p, cfg.data.chat_template)
        for p in load_prompts(cfg.data, cfg.base_dir).prompts
    ]
    score = BUILTINS["sentiment"](tokenizer=tokenizer)
    lm = lm.float().eval()
    torch.manual_seed(EVAL_SEED)
    scores: list[float] = []
    with torch.no_grad():
        for start in range(0, len(prompts), 16):
            batch = prompts[start : start + 16]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            out = lm.generate(
                **enc.to(lm.device),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=s["tokens"],
                num_return_sequences=EVAL_SAMPLES,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = tokenizer.batch_decode(
                out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
            )
            rows = [p for p in batch for _ in range(EVAL_SAMPLES)]
            scores.extend(float(x) for x in score(rows, texts))
    n = len(scores)
    mean = statistics.mean(scores)
    return {"mean": mean, "se": statistics.stdev(scores) / n**0.5, "n": n}


def child(side: str, s: dict) -> dict:
    import torch

    if s["threads"]:  # otherwise torch's default, the same in every child
        torch.set_num_threads(s["threads"])
    if side == "base":  # the untrained model, scored as the trained ones are
        from transformers import AutoModelForCausalLM

        from core.lm.sources import default_model_dir

        lm = AutoModelForCausalLM.from_pretrained(str(default_model_dir()), dtype=torch.float32)
        return {"side": side, "settings": s, "final": final_reward(lm, s)}
    trained: dict = {}
    runner = {"ours": ours_steps, "trl": trl_steps, "ppo": ppo_steps}[side]
    steps = runner(s, trained) if s.get("evaluate") else runner(s)
    final = final_reward(trained["lm"], s) if s.get("evaluate") else None
    return {
        "side": side,
        "settings": s,
        "threads": torch.get_num_threads(),
        "machine": machine_facts(s.get("load", 0)),  # as this child saw it (--avx2)
        "peak_mb": peak_mb(s["device"]),
        "steps": steps,
        **({"final": final} if final else {}),
        **({"trl_args": trl_args(s, "<tmp>")} if side == "trl" else {}),
    }


def launch(side: str, s: dict) -> dict | None:
    """One measured run in a fresh process; None (and its stderr shown) if it failed."""
    size = f"{s['prompts'] * s['generations']} x {s['tokens']}"
    label = "ours ppo (sentiment_ppo)" if side == "ppo" else f"{side} {s['algorithm']} {size}"
    print(f"running {label}...", file=sys.stderr, flush=True)
    # --load: the same busy processes beside each side's run; --avx2: AVX2 kernels only
    with hogs(s.get("load", 0), seed=s["seed"]):
        return run_child(
            __file__,
            [side, "--settings", json.dumps(s)],
            label,
            # TRL's output_dir goes to the child's data folder too; the model is a local
            # folder: no hub calls mid-run
            env={"HF_HUB_OFFLINE": "1", **(AVX2_ENV if s.get("avx2") else {})},
            tail=3000,
        )


# ---- summaries and tables -------------------------------------------------------------------


def timed_steps(run: dict) -> list[dict]:
    return run["steps"][1:] if len(run["steps"]) > 1 else run["steps"]  # step 1 warms up


def summarise(runs: list[dict]) -> dict:
    """Medians over the timed steps of all rounds of one side."""
    steps = [r for run in runs for r in timed_steps(run)]
    n = runs[0]["settings"]["prompts"] * runs[0]["settings"]["generations"]

    def med(values) -> float:
        return statistics.median(list(values))

    return {
        "runs": len(runs),
        "timed_steps": len(steps),
        "step_s": med(r["step_s"] for r in steps),
        "rollout_s": med(r["rollout_s"] for r in steps),
        "update_s": med(r["update_s"] for r in steps),
        "samples_per_s": med(n / r["step_s"] for r in steps),
        "tokens_per_s": med(r["tokens"] / r["step_s"] for r in steps),
        "peak_mb": med(run["peak_mb"] for run in runs),
        "reward_last3": med(
            statistics.mean(r["reward"] for r in run["steps"][-3:]) for run in runs
        ),
    }


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def compare(ours: dict, trl: dict) -> dict:
    keys = ("samples_per_s", "tokens_per_s", "peak_mb", "reward_last3", "step_s")
    return {k: ratio(ours[k], trl[k]) for k in keys}


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def print_pairs(summary: dict) -> None:
    print(
        "| algorithm | side | s/step | rollout s | update s | samples/s | tokens/s "
        "| peak MB | reward (last 3) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for algo, sides in summary.items():
        for side in ("ours", "trl"):
            r = sides.get(side)
            if r:
                print(
                    f"| {algo} | {side} | {r['step_s']:.2f} | {r['rollout_s']:.2f} | "
                    f"{r['update_s']:.2f} | {r['samples_per_s']:.2f} | {r['tokens_per_s']:.1f} | "
                    f"{r['peak_mb']:.0f} | {r['reward_last3']:.3f} |"
                )
        c = sides.get("ours/trl")
        if c:
            print(
                f"| {algo} | ours/TRL | {fmt(c['step_s'])} | | | {fmt(c['samples_per_s'])} | "
                f"{fmt(c['tokens_per_s'])} | {fmt(c['peak_mb'])} | {fmt(c['reward_last3'])} |"
            )
    print(
        "\nours/TRL above 1: ours higher (faster for samples/s and tokens/s; slower for s/step; "
        "more memory for peak MB). Medians over the timed steps, step 1 dropped."
    )


def print_scaling(points: list[dict]) -> None:
    print("| sweep | completions x tokens | ours s/step | TRL s/step | ours/TRL |")
    print("|---|---|---|---|---|")
    for p in points:
        o, t = p.get("ours"), p.get("trl")
        print(
            f"| {p['sweep']} | {p['completions']} x {p['tokens']} | "
            f"{fmt(o and o['step_s'])} | {fmt(t and t['step_s'])} | "
            f"{fmt(o and t and ratio(o['step_s'], t['step_s']))} |"
        )


def print_ppo(run: dict, summary: dict) -> None:
    steps = timed_steps(run)
    first = steps[0]
    print(
        f"Our PPO (sentiment_ppo, {first['completions']} x {first['max_new_tokens']} tokens), "
        f"median of {len(steps)} timed steps. "
        f"The engine logs {', '.join(sorted(first['logged']))}; "
        "it logs no reference / values split: those two columns come from timers this "
        "benchmark wraps around _score and _reference_logits in core.generation.rollout "
        "(values ride on the policy's forward pass, which also gives the rollout logprobs).\n"
    )
    print("| " + " | ".join(PPO_COLUMNS) + " | peak MB |")
    print("|" + "---|" * (len(PPO_COLUMNS) + 1))
    cells = [f"{summary[c]:.2f}" for c in PPO_COLUMNS]
    print("| " + " | ".join(cells) + f" | {run['peak_mb']:.0f} |")


# ---- the three modes ------------------------------------------------------------------------


def pair_mode(base: dict, rounds: int, algorithms: list[str]) -> dict:
    runs: dict[str, dict[str, list]] = {algo: {"ours": [], "trl": []} for algo in algorithms}
    for _ in range(rounds):
        for algo, sides in runs.items():
            for side in ("ours", "trl"):  # alternate, so drift in machine load hits both
                result = launch(side, {**base, "algorithm": algo})
                if result:
                    sides[side].append(result)
    summary: dict[str, dict] = {}
    for algo, sides in runs.items():
        summary[algo] = {side: summarise(rs) for side, rs in sides.items() if rs}
        if all(sides.values()):
            summary[algo]["ours/trl"] = compare(summary[algo]["ours"], summary[algo]["trl"])
    print_pairs(summary)
    return {"runs": runs, "summary": summary}


def scaling_points(limit: int | None, generations: int) -> list[dict]:
    by_batch = [
        {"sweep": "completions", "completions": c, "tokens": 32} for c in SCALING_COMPLETIONS
    ]
    by_length = [{"sweep": "tokens", "completions": 8, "tokens": t} for t in SCALING_TOKENS]
    points = by_batch[:limit] + by_length[:limit]
    for p in points:
        if p["completions"] % generations:
            raise SystemExit(f"{p['completions']} completions is not a multiple of {generations}")
    return points


def scaling_mode(base: dict, rounds: int, limit: int | None) -> dict:
    points = scaling_points(limit, base["generations"])
    raw = []
    for p in points:
        s = {
            **base,
            "algorithm": "grpo",
            "prompts": p["completions"] // base["generations"],
            "tokens": p["tokens"],
        }
        runs: dict[str, list] = {"ours": [], "trl": []}
        for _ in range(rounds):
            for side, done in runs.items():  # alternate, as in pair_mode
                result = launch(side, s)
                if result:
                    done.append(result)
        p.update({side: summarise(done) for side, done in runs.items() if done})
        raw.extend(run for done in runs.values() for run in done)
    print_scaling(points)
    return {"points": points, "runs": raw}


def ppo_mode(base: dict) -> dict:
    run = launch("ppo", {**base, "algorithm": "ppo"})
    if run is None:
        return {"runs": []}
    steps = timed_steps(run)
    summary = {c: statistics.median(r[c] for r in steps) for c in PPO_COLUMNS}
    print_ppo(run, summary)
    return {
        "runs": [run],
        "summary": {**summary, "peak_mb": run["peak_mb"]},
        "note": "the engine logs time/rollout_s, time/reward_s and time/update_s only; "
        "generation, reference and policy+values come from this benchmark's timers",
    }


def reward_mode(
    base: dict, seeds: int, algorithms: list[str], prior: dict | None = None, save=None
) -> dict:
    """Each side trained the same steps from several seeds, then its final model scored by
    final_reward(); the untrained model is scored the same way once. `prior`: an earlier
    result with the same settings, whose rows (other seeds) are kept. `save(result)` is
    called after every run, so a cut-short sweep keeps the runs it finished."""
    new_seeds = range(base["seed"], base["seed"] + seeds)
    rows: list[dict] = [
        r
        for r in (prior or {}).get("rows", [])
        if not (r["seed"] in new_seeds and r["algorithm"] in algorithms)
    ]
    started = {"final": prior["untrained"]} if prior and prior.get("untrained") else None
    if started is None:
        started = launch("base", {**base, "algorithm": algorithms[0]})  # reads its prompts
    for seed in new_seeds:
        for algo in algorithms:
            for side in ("ours", "trl"):  # alternate, as in pair_mode
                run = launch(side, {**base, "algorithm": algo, "seed": seed, "evaluate": True})
                if run:
                    rows.append(
                        {
                            "algorithm": algo,
                            "side": side,
                            "seed": seed,
                            "final": run["final"],
                            "train_reward_last5": statistics.mean(
                                r["reward"] for r in run["steps"][-5:]
                            ),
                            "step_s": statistics.median(r["step_s"] for r in timed_steps(run)),
                            "peak_mb": run["peak_mb"],
                            "steps": run["steps"],
                        }
                    )
                if save is not None:
                    save(_reward_result(rows, started))
    result = _reward_result(rows, started)
    print_reward(rows, result["untrained"])
    return result


def _reward_result(rows: list[dict], started: dict | None) -> dict:
    untrained = started["final"] if started else None
    summary = {}
    for algo in sorted({r["algorithm"] for r in rows}):
        for side in ("ours", "trl"):
            finals = [
                r["final"]["mean"] for r in rows if r["algorithm"] == algo and r["side"] == side
            ]
            if finals:
                summary[f"{algo}/{side}"] = {
                    "final_mean_over_seeds": statistics.mean(finals),
                    "seeds": len(finals),
                }
    return {"untrained": untrained, "rows": rows, "summary": summary}


def print_reward(rows: list[dict], untrained: dict | None) -> None:
    if untrained:
        print(
            f"untrained model: {untrained['mean']:.3f} +- {untrained['se']:.3f} "
            f"({untrained['n']} continuations)\n"
        )
    print(
        "| algorithm | side | seed | final reward (+- se) | train reward, last 5 steps | s/step |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        f = r["final"]
        print(
            f"| {r['algorithm']} | {r['side']} | {r['seed']} | {f['mean']:.3f} +- {f['se']:.3f} | "
            f"{r['train_reward_last5']:.3f} | {r['step_s']:.2f} |"
        )


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    out = {}
    for name in ("torch", "transformers", "trl", "accelerate", "datasets"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="steps per run (default 6; --scaling 3)")
    parser.add_argument("--rounds", type=int, default=1, help="ours/TRL alternations per pair")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step")
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt")
    parser.add_argument("--tokens", type=int, default=32, help="max new tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads in every run (default: torch's)")
    parser.add_argument(
        "--scaling", action="store_true", help="GRPO s/step as batch / length double"
    )
    parser.add_argument(
        "--points", type=int, help="--scaling: only the first N points of each sweep"
    )
    parser.add_argument(
        "--sampler", choices=("loop", "generate"), default="loop", help="our engine's sampler"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="compute precision on both sides (weights stay float32): bfloat16 is autocast, "
        "TRL's bf16=True",
    )
    parser.add_argument(
        "--sampling-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="our side only: sample rollouts from a bfloat16 copy of the policy "
        "(generation.sampling_dtype; the update stays in --dtype)",
    )
    parser.add_argument(
        "--algorithms", default="grpo,rloo", help="which pairs, comma-separated (grpo,rloo)"
    )
    parser.add_argument("--ppo", action="store_true", help="our PPO's step split (sentiment_ppo)")
    parser.add_argument(
        "--reward",
        action="store_true",
        help="train each side --steps steps from --seeds seeds, then score the final models",
    )
    parser.add_argument("--seeds", type=int, default=2, help="--reward: seeds per side")
    parser.add_argument(
        "--add",
        action="store_true",
        help="--reward: keep the results file's other seeds (same settings), e.g. --seed 2 --add",
    )
    parser.add_argument("--lr", type=float, help="learning rate (default: the recipe's, 1e-5)")
    parser.add_argument(
        "--load", type=int, default=0, help="busy background processes beside every run"
    )
    parser.add_argument(
        "--avx2",
        action="store_true",
        help="torch and oneDNN use their AVX2 kernels only (an AVX2-only CPU's code paths)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.settings))))
        return 0

    from core.config import load_config

    recipe = load_config(RECIPE)
    base = {
        "prompts": args.prompts,
        "generations": args.generations,
        "tokens": args.tokens,
        "steps": args.steps or (3 if args.scaling else 6),
        "seed": args.seed,
        "lr": args.lr or recipe.training.learning_rate,  # 1e-5
        "beta": recipe.algorithm.kl_coef,  # 0.04, fixed (the recipe's adaptive_kl is off)
        "reward_clip": recipe.algorithm.reward_clip,
        "device": args.device,
        "threads": args.threads,
        "sampler": args.sampler,
        "dtype": args.dtype,
        "load": args.load,
        "avx2": args.avx2,
    }
    if args.sampling_dtype != "float32":  # recorded only when set: older results still --add
        base["sampling_dtype"] = args.sampling_dtype

    def write(name: str, result: dict) -> None:
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {**machine(), **machine_facts(args.load)},
            "versions": versions(),
            "settings": {**base, "rounds": args.rounds, "recipe": RECIPE.name},
            **result,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / name).write_text(json.dumps(report, indent=2))

    suffix = "" if args.dtype == "float32" else "_bf16"
    if args.sampling_dtype != "float32":
        suffix += "_sampling_bf16"
    suffix += ("_avx2" if args.avx2 else "") + (f"_load{args.load}" if args.load else "")
    algorithms = [a for a in args.algorithms.split(",") if a]
    if not algorithms or set(algorithms) - {"grpo", "rloo"}:
        parser.error("--algorithms takes grpo, rloo or both")
    if args.ppo:
        name, result = f"vs_trl_ppo{suffix}.json", ppo_mode(base)
    elif args.reward:
        name = f"vs_trl_reward{suffix}.json"
        prior = None
        if args.add and (RESULTS / name).is_file():
            prior = json.loads((RESULTS / name).read_text())
            same = {"load": 0, "avx2": False}  # files from before --load and --avx2
            same |= {k: v for k, v in prior["settings"].items() if k not in ("seed", "rounds")}
            if same != {k: v for k, v in base.items() if k != "seed"} | {"recipe": RECIPE.name}:
                parser.error(f"--add: {name} was made with other settings: {prior['settings']}")
        result = reward_mode(
            base, args.seeds, algorithms, prior, lambda partial: write(name, partial)
        )
    elif args.scaling:
        name, result = (
            f"vs_trl_scaling{suffix}.json",
            scaling_mode(base, args.rounds, args.points),
        )
    else:
        name, result = f"vs_trl{suffix}.json", pair_mode(base, args.rounds, algorithms)
    write(name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
