"""One training step: sample, score, update (online), or update on a batch of a fixed
data set (offline); each yields the step's Metrics (and Samples)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from core.algorithms.common import RunningMoments, masked_mean
from core.events import Event, Log, Metrics, Sample, Samples
from core.generation.rollout import Rollout, generate_rollout
from core.lm.cpu_threads import torch_threads
from core.lm.policy import LoadedModels
from core.parallel import distributed
from core.rewards.scores import component_means
from core.text_metrics import distinct_n
from core.training.memory import peak_memory_mb

if TYPE_CHECKING:
    from core.training.run import TrainingRun


def online_step(run: TrainingRun, step: int) -> Iterator[Event]:
    """Rollouts of the step's prompts, their rewards, one update."""
    cfg, models, algo = run.cfg, run.models, run.algo
    started, held = time.perf_counter(), run.held_s()
    # Each prompt k times in a row: groups stay contiguous for RLOO / GRPO. With several
    # processes each takes its own slice of the step's prompts (whole groups).
    picked = [run.train_idx[i] for i in distributed.shard(run.sampler.indices(step))]
    idx = [i for i in picked for _ in range(cfg.algorithm.group_size)]
    prompts, columns = run.prompt_set.batch(idx)  # as the data holds them: text or chats
    shown = [run.prompt_set.prompts[i] for i in idx]  # as text, for messages and the store
    threads, note = run.cores.threads()  # fewer while other processes hold cores
    if note:
        yield Log("info", note)
    t0 = time.perf_counter()
    with torch_threads(threads):
        rollout = generate_rollout(
            models,
            [run.templated[i] for i in idx],
            cfg.generation,
            cfg.data.max_prompt_tokens,
            run.step_control,
            chunk_size=math.ceil(len(idx) / cfg.algorithm.minibatches),
            decode=run.decode,
            score_policy=not algo.one_pass,
            sampling=run.sampling,
        )
    t1, rollout_held = time.perf_counter(), run.held_s()
    reward_columns = rollout.reward_columns(columns)
    result, reward_s = yield from run.reward.scored(
        step,
        step - 1,
        lambda: run.reward.reward(prompts, rollout.completions, **reward_columns),
        shown,
        rollout.completions,
    )
    totals = torch.tensor(result.total, dtype=torch.float32, device=models.device)
    scores = standardised(run.reward_moments, totals) if cfg.reward.normalize else totals
    t2 = time.perf_counter()
    # ALGO LOGIC: the algorithm's own update; everything around it is plumbing.
    update = algo.update(rollout, scores)
    t3 = time.perf_counter()
    times = {
        "time/rollout_s": t1 - t0 - (rollout_held - held),  # a pause between tokens is not
        "time/reward_s": reward_s,
        "time/update_s": t3 - t2,
    }
    if run.sampling is not None:  # the bfloat16 copy follows the weights the update moved
        times["time/sync_s"] = run.sampling.refresh()
    values = _online_metrics(run, rollout, result, totals, update, times)
    values["perf/sampling_threads"] = float(threads)
    # the step's own duration, pauses left out: the studio's ETA comes from these
    values["time/step_s"] = time.perf_counter() - started - (run.held_s() - held)
    yield Metrics(step, run.elapsed(), values)
    if cfg.logging.samples_per_step:
        rows = samples_of(models, rollout, shown, result, update, step, cfg.logging)
        yield Samples(step, rows)


def _online_metrics(run: TrainingRun, rollout: Rollout, result, totals, update, times) -> dict:
    algo, device = run.algo, run.models.device
    busy = sum(times.values())
    values = {
        "reward/mean": float(totals.mean()),
        "reward/std": float(totals.std()) if len(totals) > 1 else 0.0,
        **component_means("reward", result.components),
        "objective/entropy": float(masked_mean(rollout.entropy, rollout.mask)),
        "response/length_mean": float(rollout.lengths.mean()),
        "response/ended_frac": float(rollout.ended.float().mean()),
        # the share of distinct word pairs: falls as the completions grow alike (the doctor)
        "response/distinct_2": distinct_n(rollout.completions, 2),
        **times,
        "perf/tokens_per_s": float(rollout.mask.sum()) / max(busy, 1e-9),
        "memory/peak_mb": peak_memory_mb(device),
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
    return values


def offline_step(run: TrainingRun, step: int) -> Iterator[Event]:
    """One update on a batch of the algorithm's offline data set (no generation)."""
    t0 = time.perf_counter()
    items = [run.offline[i] for i in distributed.shard(run.sampler.indices(step))]
    # ALGO LOGIC
    update, batch = run.algo.offline_update(items)
    t1 = time.perf_counter()
    values = {
        "offline/batch_reward_z": float(batch.scores.mean()),
        "response/length_mean": float(batch.mask.sum(1).mean()),
        "time/rollout_s": 0.0,
        "time/reward_s": 0.0,
        "time/update_s": t1 - t0,
        "time/step_s": t1 - t0,
        "perf/tokens_per_s": float(batch.mask.sum()) / max(t1 - t0, 1e-9),
        "memory/peak_mb": peak_memory_mb(run.models.device),
        "lr": run.algo.optimizer.param_groups[0]["lr"],
        **update.metrics,
    }
    values = distributed.reduce_metrics(values)
    yield Metrics(step, run.elapsed(), values)


def standardised(moments: RunningMoments, totals: torch.Tensor) -> torch.Tensor:
    """Totals standardised by the running mean and std of every total so far (these too;
    with several processes, every rank's)."""
    moments.update(distributed.all_cat(totals))
    return (totals - moments.mean) / max(moments.std, 1e-6)


def samples_of(
    models: LoadedModels, rollout: Rollout, prompts, result, update, step: int, logging
) -> tuple[Sample, ...]:
    """The first completions with per-token logprob, KL and advantage, as plain lists."""
    rows = []
    tok = models.tokenizer
    for i in range(min(logging.samples_per_step, len(prompts))):
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
