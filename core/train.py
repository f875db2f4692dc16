"""The training loop: `train(config, control) -> Iterator[Event]`.

A generator, so the CLI, the studio's worker thread and the tests drive the very
same code and decide themselves what to do with each event.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.algorithms import ALGORITHMS, make_algorithm
from core.algorithms.common import masked_mean
from core.checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from core.config import RunConfig, validate
from core.control import Control, Stopped
from core.data import PromptSampler, format_prompt, load_prompts, load_rated
from core.evaluation import evaluate, heldout_split
from core.events import Checkpoint, Event, Log, Metrics, Sample, Samples, Status
from core.models import LoadedModels, load_models
from core.replay import Transition, collate
from core.resources import peak_memory_mb
from core.rewards import RewardError, build_reward
from core.rollout import Rollout, generate_rollout


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _make_optimizer(cfg: RunConfig, policy):
    from transformers import get_scheduler

    t = cfg.training
    # Fresh ILQL heads learn faster than a pretrained LM should move: their own rate.
    heads, rest = [], []
    for name, p in policy.named_parameters():
        if p.requires_grad:
            (heads if name.startswith("ilql_heads.") else rest).append(p)
    groups = [{"params": rest}]
    if heads:
        groups.append({"params": heads, "lr": t.learning_rate * cfg.ilql.heads_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=t.learning_rate, weight_decay=t.weight_decay)
    scheduler = get_scheduler(
        t.lr_schedule, optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=t.steps
    )
    return optimizer, scheduler


def _samples(models: LoadedModels, rollout: Rollout, prompts, result, update, n) -> tuple:
    """The first n completions with per-token logprob, KL and advantage, as plain lists."""
    rows = []
    tok = models.tokenizer
    for i in range(min(n, len(prompts))):
        keep = rollout.mask[i].bool()
        ids = rollout.response[i][keep].tolist()
        rows.append(
            Sample(
                prompt=prompts[i],
                completion=rollout.completions[i],
                reward=float(result.total[i]),
                components={k: float(v[i]) for k, v in result.components.items()},
                tokens=[tok.decode([t]) for t in ids],
                logprobs=rollout.logprobs[i][keep].tolist(),
                kl=update.kl[i][keep].tolist(),
                advantages=update.advantages[i][keep].tolist(),
            )
        )
    return tuple(rows)


def train(
    config: RunConfig,
    control: Control | None = None,
    *,
    checkpoint_dir: Path | None = None,
    resume_from: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Event]:
    """Run RL fine-tuning and yield Status, Metrics, Samples, Checkpoint and Log events.

    Pause, resume and stop come through `control`; a stop saves a checkpoint of the last
    finished step (when `checkpoint_dir` is given) so the run can be resumed.
    """
    cfg = validate(config)
    control = control or Control()
    t_cfg = cfg.training
    yield Status("loading", f"Loading {cfg.model.name}", 0, t_cfg.steps)
    seed_everything(t_cfg.seed)
    prompt_set = load_prompts(cfg.data, cfg.base_dir)
    is_ilql = cfg.algorithm.name == "ilql"
    models = load_models(
        cfg.model,
        value_head=ALGORITHMS[cfg.algorithm.name].needs_value_head,
        seed=t_cfg.seed,
        progress=progress,
        ilql=cfg.ilql if is_ilql else None,
    )
    reward = build_reward(
        cfg.reward.components, tokenizer=models.tokenizer, base_dir=cfg.base_dir or None
    )
    optimizer, scheduler = _make_optimizer(cfg, models.policy)
    algo = make_algorithm(cfg, models, optimizer, scheduler)
    templated = [
        format_prompt(models.tokenizer, p, cfg.data.chat_template) for p in prompt_set.prompts
    ]
    rated = None
    if is_ilql and cfg.ilql.mode == "offline":
        rated = _rated_transitions(cfg, models)
    train_idx, heldout_idx = heldout_split(cfg, prompt_set)
    sampler = PromptSampler(
        len(rated) if rated else len(train_idx), t_cfg.batch_size, t_cfg.seed, cfg.data.shuffle
    )
    run = _Run(cfg, models, algo, reward, prompt_set, templated, sampler, control, rated, train_idx)

    def evaluation() -> Iterator[Event]:
        if heldout_idx:
            values = evaluate(models, cfg, prompt_set, heldout_idx, reward, control)
            yield Metrics(step, time.perf_counter() - started, values)

    step, time_offset = 0, 0.0
    if resume_from is not None:
        state = load_checkpoint(resume_from, models.policy)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        algo.load_state_dict(state["algorithm"])
        set_rng_state(state["rng"])
        step, time_offset = state["step"], state.get("wall_time", 0.0)
        yield Log("info", f"resumed from {resume_from} at step {step}")
    started = time.perf_counter() - time_offset
    last_saved = step

    def checkpoint() -> Iterator[Event]:
        nonlocal last_saved
        if checkpoint_dir is None:
            return
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "algorithm": algo.state_dict(),
            "wall_time": time.perf_counter() - started,
        }
        path = save_checkpoint(
            checkpoint_dir,
            step,
            models.policy,
            models.tokenizer,
            state,
            keep=t_cfg.keep_checkpoints,
        )
        last_saved = step
        yield Checkpoint(step, str(path))

    yield Status(
        "running",
        f"Training {cfg.algorithm.name} on {models.source} "
        f"({models.device.type}, {str(models.dtype).removeprefix('torch.')})",
        step,
        t_cfg.steps,
    )
    try:
        if step == 0:
            if heldout_idx:
                yield Log("info", f"evaluating on {len(heldout_idx)} held-out prompts")
            else:
                yield Log(
                    "info",
                    "no held-out prompts (data.heldout_fraction or a tiny set): "
                    "evaluation is skipped",
                )
            yield from evaluation()
        while step < t_cfg.steps:
            if control.paused:
                yield Status("paused", "Paused", step, t_cfg.steps)
                control.wait_while_paused()
                if not control.stopped:
                    yield Status("running", "Resumed", step, t_cfg.steps)
            control.check()
            if control.take_checkpoint_request() and step != last_saved:
                yield from checkpoint()
            step_events = _offline_step if rated else _one_step
            yield from step_events(run, step + 1, started)
            step += 1
            if t_cfg.eval_every and step % t_cfg.eval_every == 0 and step < t_cfg.steps:
                yield from evaluation()
            if t_cfg.checkpoint_every and step % t_cfg.checkpoint_every == 0:
                yield from checkpoint()
        yield from evaluation()
    except Stopped:
        if step != last_saved:
            yield from checkpoint()
        yield Status("stopped", "Stopped by the user", step, t_cfg.steps)
        return
    except RewardError:
        # The weights are those of the last finished step: keep them so a fixed reward resumes.
        if step != last_saved:
            yield from checkpoint()
        raise
    if step != last_saved:
        yield from checkpoint()
    yield Status("completed", "Finished", step, t_cfg.steps)


@dataclass
class _Run:
    """What every step of one run needs."""

    cfg: RunConfig
    models: LoadedModels
    algo: object
    reward: object
    prompt_set: object
    templated: list[str]
    sampler: PromptSampler
    control: Control
    rated: list[Transition] | None
    train_idx: list[int]


def _rated_transitions(cfg: RunConfig, models: LoadedModels) -> list[Transition]:
    """The offline data set tokenised as the policy would have produced it."""
    tok = models.tokenizer
    end = [tok.eos_token_id] if tok.eos_token_id is not None else []
    items = []
    for row in load_rated(cfg.ilql.dataset, cfg.base_dir):
        prompt = format_prompt(tok, row["prompt"], cfg.data.chat_template)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"][-cfg.data.max_prompt_tokens :]
        c_ids = tok(row["completion"], add_special_tokens=False)["input_ids"]
        c_ids = c_ids[: cfg.generation.max_new_tokens - len(end)] + end
        items.append(Transition(tuple(p_ids), tuple(c_ids), float(row["reward"])))
    # Standardised rewards: Q - V is then in units of the data's spread, so beta means
    # the same on every task.
    rewards = np.array([t.reward for t in items])
    mean, std = rewards.mean(), max(rewards.std(), 1e-8)
    return [dataclasses.replace(t, reward=float((t.reward - mean) / std)) for t in items]


def _offline_step(run: _Run, step: int, started: float) -> Iterator[Event]:
    """One ILQL update on a batch of the rated data set (no generation)."""
    t0 = time.perf_counter()
    items = [run.rated[i] for i in run.sampler.indices(step)]
    batch = collate(items, run.models.tokenizer.pad_token_id, run.models.device)
    update = run.algo.update(batch, batch.scores)
    t1 = time.perf_counter()
    values = {
        "offline/batch_reward_z": float(batch.scores.mean()),
        "response/length_mean": float(batch.mask.sum(1).mean()),
        "time/rollout_s": 0.0,
        "time/reward_s": 0.0,
        "time/update_s": t1 - t0,
        "perf/tokens_per_s": float(batch.mask.sum()) / max(t1 - t0, 1e-9),
        "memory/peak_mb": peak_memory_mb(run.models.device),
        "lr": run.algo.optimizer.param_groups[0]["lr"],
        **update.metrics,
    }
    yield Metrics(step, time.perf_counter() - started, values)


def _one_step(run: _Run, step: int, started: float) -> Iterator[Event]:
    cfg, models, algo, reward = run.cfg, run.models, run.algo, run.reward
    # Each prompt k times in a row: groups stay contiguous for RLOO / GRPO.
    picked = [run.train_idx[i] for i in run.sampler.indices(step)]
    idx = [i for i in picked for _ in range(cfg.algorithm.group_size)]
    prompts, columns = run.prompt_set.batch(idx)
    t0 = time.perf_counter()
    rollout = generate_rollout(
        models,
        [run.templated[i] for i in idx],
        cfg.generation,
        cfg.data.max_prompt_tokens,
        run.control,
        chunk_size=math.ceil(len(idx) / cfg.algorithm.minibatches),
        ilql=cfg.ilql,
    )
    t1 = time.perf_counter()
    result = reward(prompts, rollout.completions, **columns)
    totals = torch.tensor(result.total, dtype=torch.float32, device=models.device)
    t2 = time.perf_counter()
    update = algo.update(rollout, totals)
    t3 = time.perf_counter()
    new_tokens = float(rollout.mask.sum())
    values = {
        "reward/mean": float(totals.mean()),
        "reward/std": float(totals.std()) if len(totals) > 1 else 0.0,
        **{f"reward/{name}": float(np.mean(v)) for name, v in result.components.items()},
        "objective/entropy": float(masked_mean(rollout.entropy, rollout.mask)),
        "response/length_mean": float(rollout.lengths.mean()),
        "response/ended_frac": float(rollout.ended.float().mean()),
        "time/rollout_s": t1 - t0,
        "time/reward_s": t2 - t1,
        "time/update_s": t3 - t2,
        "perf/tokens_per_s": new_tokens / max(t3 - t0, 1e-9),
        "memory/peak_mb": peak_memory_mb(models.device),
        "lr": algo.optimizer.param_groups[0]["lr"],
        **update.metrics,
    }
    if algo.skipped_steps:
        values["loss/skipped_nonfinite"] = float(algo.skipped_steps)
    yield Metrics(step, time.perf_counter() - started, values)
    if cfg.logging.samples_per_step:
        yield Samples(
            step,
            _samples(models, rollout, prompts, result, update, cfg.logging.samples_per_step),
        )
