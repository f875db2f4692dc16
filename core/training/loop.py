"""The training loop: `train(config, control) -> Iterator[Event]`.

A generator, so the CLI, the studio's worker thread and the tests drive the very
same code and decide themselves what to do with each event.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from core.algorithms import ALGORITHMS, make_algorithm
from core.algorithms.common import RunningMoments, masked_mean
from core.algorithms.ilql.replay import Transition, collate
from core.config import ConfigError, RunConfig, validate
from core.control import Control, Stopped
from core.data import PromptSampler, format_prompt, load_prompts, load_rated
from core.events import (
    Checkpoint,
    Event,
    Log,
    Metrics,
    RewardFailure,
    Sample,
    Samples,
    Status,
)
from core.generation.rollout import Rollout, generate_rollout
from core.lm.device import cpu_bf16_hint
from core.lm.policy import LoadedModels, load_models
from core.parallel import distributed, sharding
from core.rewards import CompositeReward, RewardError, build_reward
from core.rewards.scores import component_means
from core.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from core.training.evaluation import evaluate, heldout_split
from core.training.memory import hold_freed_memory, peak_memory_mb

T = TypeVar("T")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


RANK_SEED_STRIDE = 10_007  # rank r samples with seed + r * this (rank 0: the run's own seed)


def _check_fsdp(cfg: RunConfig, world: int) -> None:
    """What FSDP needs that plain data parallel does not: every forward is a collective, so
    every rank must take an equal share of the prompts and run the same loop."""
    if cfg.algorithm.name == "ilql":
        raise ConfigError(
            "ILQL runs data parallel (torchrun / accelerate without FSDP), not with FSDP: "
            "its own sampling loop does not keep the processes in step"
        )
    if cfg.model.compile:
        raise ConfigError(
            "model.compile is not available with FSDP: turn it off, or run data parallel "
            "(torchrun / accelerate without FSDP)"
        )
    if cfg.training.batch_size % world:
        raise ConfigError(
            f"with FSDP, training.batch_size = {cfg.training.batch_size} prompts must split "
            f"evenly over {world} processes (a multiple of {world})"
        )


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
    # fused: one in-place kernel per tensor, no temporaries (on CPU 75 ms a step against
    # 330-450 ms with foreach for the 135M default; torch's CPU default loops per tensor).
    # Neither over FSDP's sharded weights mixed with the whole heads, which it cannot batch.
    sharded = any(sharding.is_sharded(p) for g in groups for p in g["params"])
    device = next((p.device for g in groups for p in g["params"]), torch.device("cpu"))
    fused = not sharded and device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(
        groups,
        lr=t.learning_rate,
        weight_decay=t.weight_decay,
        **({"fused": True} if fused else {"foreach": not sharded}),
    )
    scheduler = get_scheduler(
        t.lr_schedule, optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=t.steps
    )
    return optimizer, scheduler


def _samples(models: LoadedModels, rollout: Rollout, prompts, result, update, n, step) -> tuple:
    """The first n completions with per-token logprob, KL and advantage, as plain lists."""
    rows = []
    tok = models.tokenizer
    for i in range(min(n, len(prompts))):
        keep = rollout.mask[i].bool()
        ids = rollout.response[i][keep].tolist()
        rows.append(
            Sample(
                step=step,
                idx=i,
                prompt=prompts[i],
                completion=rollout.completions[i],
                reward=float(result.total[i]),
                components={k: v[i] for k, v in result.components.items()},
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
    rank, world = distributed.rank(), distributed.world_size()
    if world > t_cfg.batch_size:
        raise ConfigError(
            f"training.batch_size = {t_cfg.batch_size} prompts cannot be shared by {world} "
            f"processes: give every process at least one (batch_size >= {world})"
        )
    fsdp = sharding.requested()
    if fsdp:
        _check_fsdp(cfg, world)
    yield Status("loading", f"Loading {cfg.model.name}", 0, t_cfg.steps)
    seed_everything(t_cfg.seed)
    prompt_set = load_prompts(cfg.data, cfg.base_dir)
    is_ilql = cfg.algorithm.name == "ilql"
    try:  # a caller's `progress` may raise Stopped to cut a long download or conversion short
        models = load_models(
            cfg.model,
            value_head=ALGORITHMS[cfg.algorithm.name].needs_value_head,
            seed=t_cfg.seed,
            progress=progress,
            ilql=cfg.ilql if is_ilql else None,
        )
    except Stopped:
        yield Status("stopped", "Stopped while loading the model", 0, t_cfg.steps)
        return
    if world > 1:  # the same starting weights everywhere; each rank its own samples
        distributed.broadcast_parameters(models.policy)
        if models.reference.lm is not None:  # a copy (with LoRA: the policy, adapter off)
            distributed.broadcast_parameters(models.reference.lm)
        if rank:
            seed_everything(t_cfg.seed + RANK_SEED_STRIDE * rank)
    # The weights are read before sharding (each rank reads the whole checkpoint), the
    # optimiser's state after (it is sharded like the weights).
    state = load_checkpoint(resume_from, models.policy) if resume_from is not None else None
    if fsdp:
        opts = sharding.options_from_env()
        sharding.shard_lm(models.policy.lm, opts, models.device)
        if models.reference.lm is not None:
            sharding.shard_lm(models.reference.lm, opts, models.device)
        yield Log("info", f"FSDP: the model is sharded over {world} processes ({opts.describe()})")
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
    run = _Run(cfg, models, algo, None, prompt_set, templated, sampler, control, rated, train_idx)
    # Several processes stop, pause and checkpoint together, at step boundaries only: the
    # work inside a step (generation, evaluation) gets a control no one stops.
    run.step_control = Control() if world > 1 else control

    def evaluation() -> Iterator[Event]:
        # The others go on and wait for it at the next step; with FSDP every forward needs
        # every rank, so all of them evaluate and rank 0's figures are kept.
        if heldout_idx and (rank == 0 or fsdp):
            values, _ = yield from _scored(
                run,
                step,
                step,
                lambda: evaluate(
                    models, cfg, prompt_set, heldout_idx, run.reward, run.step_control
                ),
            )
            yield Metrics(step, time.perf_counter() - started, values)

    step, time_offset = 0, 0.0
    if state is not None:
        if fsdp:
            sharding.load_optimizer_state(models.policy, optimizer, state["optimizer"])
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        algo.load_state_dict(state["algorithm"])
        _restore_rng(state, rank, world, t_cfg.seed)
        if "reward_moments" in state:
            run.reward_moments.load_state_dict(state["reward_moments"])
        step, time_offset = state["step"], state.get("wall_time", 0.0)
        yield Log("info", f"resumed from {resume_from} at step {step}")
    started = time.perf_counter() - time_offset
    last_saved = step

    def checkpoint() -> Iterator[Event]:
        nonlocal last_saved
        if checkpoint_dir is None:
            return
        rngs = distributed.gather(rng_state()) if world > 1 else None
        weights = optimizer_state = None
        if fsdp:  # every rank lends its shards to rank 0's whole copy
            weights = sharding.full_model_state(models.policy.lm)
            optimizer_state = sharding.full_optimizer_state(models.policy, optimizer)
        if rank != 0:  # rank 0 alone writes; the others only lent it their RNG states
            last_saved = step
            return
        state = {
            "optimizer": optimizer_state or optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "algorithm": algo.state_dict(),
            "reward_moments": run.reward_moments.state_dict(),
            "wall_time": time.perf_counter() - started,
        }
        if rngs is not None:
            state["rng_ranks"] = rngs
        path = save_checkpoint(
            checkpoint_dir,
            step,
            models.policy,
            models.tokenizer,
            state,
            keep=t_cfg.keep_checkpoints,
            weights=weights,
        )
        last_saved = step
        yield Checkpoint(step, str(path))

    # The reward starts last (user code gets its worker process here); `finally` stops it.
    run.reward = build_run_reward(cfg, models.tokenizer, _collect_output(cfg, run.reward_output))
    release_memory = hold_freed_memory(models.device)
    try:
        yield from _reward_logs(run)
        yield Status(
            "running",
            f"Training {cfg.algorithm.name} on {models.source} "
            f"({models.device.type}, {str(models.dtype).removeprefix('torch.')})",
            step,
            t_cfg.steps,
        )
        hint = cpu_bf16_hint(models.device, models.dtype)
        if hint and rank == 0:
            yield Log("info", hint)
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
            if world > 1 and distributed.any_rank(control.stopped):
                control.stop()  # a stop seen by one rank stops them all, at the same step
            control.check()
            wanted = control.take_checkpoint_request()
            if (distributed.any_rank(wanted) if world > 1 else wanted) and step != last_saved:
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
        # (Not with several processes: the others are not at this point to lend their part.)
        if step != last_saved and world == 1:
            yield from checkpoint()
        raise
    finally:
        run.reward.close()
        release_memory()
    if step != last_saved:
        yield from checkpoint()
    yield Status("completed", "Finished", step, t_cfg.steps)


def build_run_reward(cfg: RunConfig, tokenizer=None, on_output=None) -> CompositeReward:
    """The recipe's reward with its time and memory limits. Python rewards start their
    worker processes here: close the result. `on_output(name, text)` gets their prints."""
    return build_reward(
        cfg.reward.components,
        tokenizer=tokenizer,
        base_dir=cfg.base_dir or None,
        time_limit_s=cfg.reward.time_limit_s,
        memory_limit_mb=cfg.reward.memory_limit_mb or None,
        on_output=on_output,
    )


def _collect_output(cfg: RunConfig, output: list[str]) -> Callable[[str, str], None]:
    """An `on_output` that keeps what reward code prints in `output`, for Log events."""
    several = sum(c.kind == "python" for c in cfg.reward.components) > 1

    def on_output(name: str, text: str) -> None:
        text = text.rstrip("\n")
        output.append(f"[{name}] {text}" if several else text)

    return on_output


def _reward_logs(run: _Run) -> Iterator[Event]:
    """What reward code printed since the last call, as Log("reward", text) events."""
    while run.reward_output:
        yield Log("reward", run.reward_output.pop(0))


def _scored(
    run: _Run,
    step: int,
    done: int,
    attempt: Callable[[], T],
    prompts: Sequence[str] = (),
    completions: Sequence[str] = (),
) -> Generator[Event, None, tuple[T, float]]:
    """`attempt()` (scoring with the run's reward) and the seconds it took.

    If reward code fails and the control pauses on reward errors, the run pauses with a
    `RewardFailure`; on resume the reward files are reloaded and `attempt` runs again on
    the same completions, so no step is lost or repeated. A stop while paused raises
    `Stopped`. Otherwise the `RewardError` propagates. `done` is the finished step count.
    """
    reload = False
    while True:
        t0 = time.perf_counter()
        try:
            if reload:
                run.reward.reload()
            value = attempt()
            failure = None
        except RewardError as exc:
            failure = exc
        elapsed = time.perf_counter() - t0
        yield from _reward_logs(run)
        if failure is None:
            return value, elapsed
        if not run.control.pause_on_reward_error:
            raise failure
        yield from _pause_for_fix(run, failure, step, done, prompts, completions)
        reload = True


def _pause_for_fix(
    run: _Run,
    failure: RewardError,
    step: int,
    done: int,
    prompts: Sequence[str],
    completions: Sequence[str],
) -> Iterator[Event]:
    control, total = run.control, run.cfg.training.steps
    i = failure.sample_index
    known = i is not None and 0 <= i < len(completions)
    control.pause()  # before the events, so a resume can only come after them
    yield RewardFailure(
        step,
        str(failure),
        failure.component,
        i,
        failure.lineno,
        prompts[i] if known else None,
        completions[i] if known else None,
    )
    yield Status(
        "paused", f"Reward failed: {failure}. Fix the reward code, then resume.", done, total
    )
    control.check()
    yield Status("running", "Resumed: reloading the reward code", done, total)


@dataclass
class _Run:
    """What every step of one run needs."""

    cfg: RunConfig
    models: LoadedModels
    algo: object
    reward: CompositeReward | None
    prompt_set: object
    templated: list[str]
    sampler: PromptSampler
    control: Control
    rated: list[Transition] | None
    train_idx: list[int]
    reward_moments: RunningMoments = field(default_factory=RunningMoments)  # reward.normalize
    reward_output: list[str] = field(default_factory=list)  # printed by reward code, not yet sent
    step_control: Control | None = None  # what generation inside a step obeys (see train)


def _rated_transitions(cfg: RunConfig, models: LoadedModels) -> list[Transition]:
    """The offline data set tokenised as the policy would have produced it."""
    tok = models.tokenizer
    end = [tok.eos_token_id] if tok.eos_token_id is not None else []
    items = []
    for row in load_rated(cfg.ilql.dataset, cfg.base_dir):
        prompt = format_prompt(tok, row["prompt"], cfg.data.chat_template)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"][-cfg.data.max_prompt_tokens :]
        c_ids = tok(row["completion"], add_special_tokens=False)["input_ids"]
        # As generation lays a completion out: one that stopped before the length limit
        # ended with EOS; one that reached it was cut there, with no EOS the policy never
        # chose (an appended one would be the costliest token of every row to imitate).
        limit = cfg.generation.max_new_tokens
        c_ids = c_ids + end if len(c_ids) < limit else c_ids[:limit]
        items.append(Transition(tuple(p_ids), tuple(c_ids), float(row["reward"])))
    # Standardised rewards: Q - V is then in units of the data's spread, so beta means
    # the same on every task.
    rewards = np.array([t.reward for t in items])
    mean, std = rewards.mean(), max(rewards.std(), 1e-8)
    return [dataclasses.replace(t, reward=float((t.reward - mean) / std)) for t in items]


def _offline_step(run: _Run, step: int, started: float) -> Iterator[Event]:
    """One ILQL update on a batch of the rated data set (no generation)."""
    t0 = time.perf_counter()
    items = [run.rated[i] for i in distributed.shard(run.sampler.indices(step))]
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
    values = distributed.reduce_metrics(values)
    yield Metrics(step, time.perf_counter() - started, values)


def _restore_rng(state: dict, rank: int, world: int, seed: int) -> None:
    """The RNG states a checkpoint saved for this rank; a rank it has none for (another
    number of processes) reseeds from the run's seed and the step instead."""
    ranks = state.get("rng_ranks")
    if world == 1 and not ranks:
        set_rng_state(state["rng"])
    elif ranks is not None and len(ranks) == world:
        set_rng_state(ranks[rank])
    elif rank == 0:
        set_rng_state(state["rng"])
    else:
        seed_everything(seed + RANK_SEED_STRIDE * rank + state["step"])


def _standardised(moments: RunningMoments, totals: torch.Tensor) -> torch.Tensor:
    """Totals standardised by the running mean and std of every total so far (these too;
    with several processes, every rank's)."""
    moments.update(distributed.all_cat(totals))
    return (totals - moments.mean) / max(moments.std, 1e-6)


def _one_step(run: _Run, step: int, started: float) -> Iterator[Event]:
    cfg, models, algo, reward = run.cfg, run.models, run.algo, run.reward
    # Each prompt k times in a row: groups stay contiguous for RLOO / GRPO. With several
    # processes each takes its own slice of the step's prompts (whole groups).
    picked = [run.train_idx[i] for i in distributed.shard(run.sampler.indices(step))]
    idx = [i for i in picked for _ in range(cfg.algorithm.group_size)]
    prompts, columns = run.prompt_set.batch(idx)
    t0 = time.perf_counter()
    rollout = generate_rollout(
        models,
        [run.templated[i] for i in idx],
        cfg.generation,
        cfg.data.max_prompt_tokens,
        run.step_control,
        chunk_size=math.ceil(len(idx) / cfg.algorithm.minibatches),
        ilql=cfg.ilql,
        score_policy=not algo.one_pass,
        sampler=cfg.generation.sampler,
    )
    t1 = time.perf_counter()
    reward_columns = rollout.reward_columns(columns)
    result, reward_s = yield from _scored(
        run,
        step,
        step - 1,
        lambda: reward(prompts, rollout.completions, **reward_columns),
        prompts,
        rollout.completions,
    )
    totals = torch.tensor(result.total, dtype=torch.float32, device=models.device)
    scores = _standardised(run.reward_moments, totals) if cfg.reward.normalize else totals
    t2 = time.perf_counter()
    update = algo.update(rollout, scores)
    t3 = time.perf_counter()
    new_tokens = float(rollout.mask.sum())
    values = {
        "reward/mean": float(totals.mean()),
        "reward/std": float(totals.std()) if len(totals) > 1 else 0.0,
        **component_means("reward", result.components),
        "objective/entropy": float(masked_mean(rollout.entropy, rollout.mask)),
        "response/length_mean": float(rollout.lengths.mean()),
        "response/ended_frac": float(rollout.ended.float().mean()),
        "time/rollout_s": t1 - t0,
        "time/reward_s": reward_s,
        "time/update_s": t3 - t2,
        "perf/tokens_per_s": new_tokens / max((t1 - t0) + reward_s + (t3 - t2), 1e-9),
        "memory/peak_mb": peak_memory_mb(models.device),
        "lr": algo.optimizer.param_groups[0]["lr"],
        **update.metrics,
    }
    if algo.skipped_steps:
        values["loss/skipped_nonfinite"] = float(algo.skipped_steps)
    if distributed.active():  # every rank's shares combined; the reward over the whole batch
        values = distributed.reduce_metrics(values)
        every = distributed.all_cat(totals)
        values["reward/mean"] = float(every.mean())
        values["reward/std"] = float(every.std()) if len(every) > 1 else 0.0
    yield Metrics(step, time.perf_counter() - started, values)
    if cfg.logging.samples_per_step:
        yield Samples(
            step,
            _samples(models, rollout, prompts, result, update, cfg.logging.samples_per_step, step),
        )
