"""One training run's state and its parts: set up (`open`), the control point between
steps, a step, the cadence of evaluation and checkpoints, and the end (`close`). Each part
that has something to say is a generator of events, so `loop.train` reads as the run does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.algorithms import ALGORITHMS, Algorithm, make_algorithm
from core.algorithms.common import RunningMoments
from core.config import ConfigError, RunConfig, validate
from core.control import Control, Stopped
from core.data import PromptSampler, format_prompt, load_prompts
from core.doctor import Doctor
from core.errors import TrainingDiverged
from core.events import (
    SEVERITIES,
    Checkpoint,
    Evaluating,
    Event,
    Finding,
    Log,
    Metrics,
    RunState,
    Status,
)
from core.lm.cpu_threads import sampling_threads
from core.lm.device import cpu_bf16_hint
from core.lm.packed_linear import bf16_unpacked_reason, float32_unpacked_reason
from core.lm.policy import LoadedModels, load_models, starting_models
from core.lm.sampling_copy import SAMPLING_DTYPES, SamplingCopy, sampling_copy_unavailable
from core.parallel import distributed, sharding
from core.training.checkpoint import (
    is_legacy,
    legacy_note,
    load_checkpoint,
    prune,
    remove_partial,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from core.training.disk_space import saved_when_there_is_room
from core.training.evaluation import evaluate, heldout_split
from core.training.live_settings import apply_requested_settings
from core.training.memory import hold_freed_memory
from core.training.optimizer import make_optimizer, rebase_schedule
from core.training.reward_pause import RunReward
from core.training.steps import offline_step, online_step

RANK_SEED_STRIDE = 10_007  # rank r samples with seed + r * this (rank 0: the run's own seed)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Resume:
    """How a run carries on: its checkpoint, the checkpoints it recorded before ({step:
    folder}: the only ones pruning may delete besides its own new ones), and the settings
    changed since that checkpoint (`core.config.RESUMABLE_SETTINGS`); the newer checkpoints
    that were damaged (`skipped`)."""

    checkpoint: Path | None = None
    recorded: Mapping[int, Path] = field(default_factory=dict)
    changed: frozenset[str] = frozenset()
    skipped: tuple[str, ...] = ()  # a line for each newer checkpoint passed over, and why
    findings: tuple[Finding, ...] = ()  # what the run doctor had found (it carries on)


class TrainingRun:
    """Everything one run needs between its steps; built by `open`."""

    def __init__(
        self, cfg: RunConfig, control: Control, checkpoint_dir: Path | None, resume: Resume
    ) -> None:
        self.cfg, self.control, self.checkpoint_dir = cfg, control, checkpoint_dir
        self.resume = resume
        self.owned = dict(resume.recorded)  # checkpoints pruning may delete, by step
        self.total = cfg.training.steps
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.fsdp = sharding.requested()
        self.algo_cls: type[Algorithm] = ALGORITHMS[cfg.algorithm.name]
        # Several processes stop, pause and checkpoint together, at step boundaries only:
        # the work inside a step (generation, evaluation) gets a control no one stops.
        self.step_control = Control() if self.world > 1 else control
        self.reward = RunReward(cfg, control)
        self.reward_moments = RunningMoments()  # reward.normalize
        self.step = self.last_saved = 0
        self.skipped_in_a_row = 0  # updates, see `_count_skipped_updates`
        self.started = 0.0  # perf_counter() when training began (less the time before a resume)
        self._release_memory: Callable[[], None] | None = None
        self.doctor = Doctor.for_run(cfg)
        self.doctor.carry_on(resume.findings)
        self.starting_eval_due = False  # the starting model's evaluation waits for step 1
        self.stop_reason = ""  # why the run stopped itself (doctor.pause_on), for its status

    # ---- set-up ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        config: RunConfig,
        control: Control,
        checkpoint_dir: Path | None,
        resume: Resume,
        progress: Callable[[str], None] | None,
    ) -> Generator[Event, None, TrainingRun | None]:
        """Check, load and restore; None when stopped while loading. Starts nothing that
        needs `close` (the reward starts in `start_reward`)."""
        run = cls(validate(config), control, checkpoint_dir, resume)
        run._check_world()
        yield from run._remove_partial_saves()
        if run.rank == 0:
            for line in resume.skipped:
                yield Log("warning", line)
        resume_from = None if resume.checkpoint is None else Path(resume.checkpoint)
        yield Status(RunState.LOADING, f"Loading {run.cfg.model.name}", 0, run.total)
        seed_everything(run.cfg.training.seed)
        run.prompt_set = load_prompts(run.cfg.data, run.cfg.base_dir)
        try:  # a caller's `progress` may raise Stopped to cut a download or conversion short
            run.models = run._load_models(progress)
        except Stopped:
            yield Status(RunState.STOPPED, "Stopped while loading the model", 0, run.total)
            return None
        run._share_weights()
        # The weights are read before sharding (each rank reads the whole checkpoint), the
        # optimiser's state after (it is sharded like the weights).
        if resume_from is not None and is_legacy(resume_from) and run.rank == 0:
            yield Log("info", legacy_note(resume_from))
        state = None if resume_from is None else load_checkpoint(resume_from, run.models.policy)
        yield from run._shard()
        run._build_training()
        time_offset = 0.0
        if state is not None:
            time_offset = run._restore(state)
            yield Log("info", f"resumed from {resume_from} at step {run.step}")
        run.started = time.perf_counter() - time_offset
        return run

    def _remove_partial_saves(self) -> Iterator[Event]:
        if self.checkpoint_dir is None or self.rank != 0:
            return
        for name, size in remove_partial(self.checkpoint_dir):
            yield Log(
                "warning",
                f"removed {name} ({size / 1e6:.0f} MB): a checkpoint whose save was cut "
                "short when the run was last killed",
            )

    def _check_world(self) -> None:
        batch = self.cfg.training.batch_size
        if self.world > batch:
            raise ConfigError(
                f"training.batch_size = {batch} prompts cannot be shared by {self.world} "
                f"processes: give every process at least one (batch_size >= {self.world})"
            )
        if self.fsdp:
            _check_fsdp(self.cfg, self.algo_cls, self.world)

    def _load_models(self, progress) -> LoadedModels:
        return load_models(
            self.cfg.model,
            value_head=self.algo_cls.needs_value_head,
            seed=self.cfg.training.seed,
            progress=progress,
            heads=self.algo_cls.heads_factory(self.cfg),
        )

    def _share_weights(self) -> None:
        """The same starting weights everywhere; each rank its own samples."""
        if self.world == 1:
            return
        distributed.broadcast_parameters(self.models.policy)
        if self.models.reference.lm is not None:  # a copy (with LoRA: the policy, adapter off)
            distributed.broadcast_parameters(self.models.reference.lm)
        if self.rank:
            seed_everything(self.cfg.training.seed + RANK_SEED_STRIDE * self.rank)

    def _shard(self) -> Iterator[Event]:
        if not self.fsdp:
            return
        opts = sharding.options_from_env()
        sharding.shard_lm(self.models.policy.lm, opts, self.models.device)
        if self.models.reference.lm is not None:
            sharding.shard_lm(self.models.reference.lm, opts, self.models.device)
        yield Log(
            "info", f"FSDP: the model is sharded over {self.world} processes ({opts.describe()})"
        )

    def _build_training(self) -> None:
        cfg, models = self.cfg, self.models
        self.optimizer, self.scheduler = make_optimizer(
            cfg, self.algo_cls.param_groups(models.policy, cfg)
        )
        self.algo = make_algorithm(cfg, models, self.optimizer, self.scheduler)
        self.decode = self.algo_cls.decoder(cfg)
        self.sampling, self.sampling_note = self._sampling_copy()
        self.cores = sampling_threads(models.device, cfg.generation.sampling_threads)
        self.eval_decode = self.algo_cls.decoder(cfg, explore=False)
        self.templated = [
            format_prompt(models.tokenizer, p, cfg.data.chat_template)
            for p in self.prompt_set.batch(range(len(self.prompt_set)))[0]
        ]
        self.offline: Sequence | None = self.algo_cls.offline_data(cfg, models.tokenizer)
        self.train_idx, self.heldout_idx = heldout_split(cfg, self.prompt_set)
        t = cfg.training
        n = len(self.offline) if self.offline else len(self.train_idx)
        self.sampler = PromptSampler(n, t.batch_size, t.seed, cfg.data.shuffle)

    def _sampling_copy(self) -> tuple[SamplingCopy | None, str | None]:
        """The low-precision copy rollouts are sampled from (generation.sampling_dtype), or
        None: the policy samples itself; with a line for the log where the device cannot."""
        dtype = SAMPLING_DTYPES[self.cfg.generation.sampling_dtype]
        if dtype == torch.float32:
            return None, None
        if why := sampling_copy_unavailable(self.models.device, dtype):
            return None, why
        return SamplingCopy(self.models.policy.lm, dtype), None

    def _restore(self, state: dict) -> float:
        """The checkpoint's optimiser, scheduler, algorithm, RNG and step; returns the
        seconds trained before it."""
        if self.fsdp:
            sharding.load_optimizer_state(self.models.policy, self.optimizer, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        fresh_lrs = list(self.scheduler.base_lrs)  # this config's, before the checkpoint's
        self.scheduler.load_state_dict(state["scheduler"])
        self.algo.load_state_dict(state["algorithm"])
        self._apply_changed_settings(fresh_lrs)
        _restore_rng(state, self.rank, self.world, self.cfg.training.seed)
        if "reward_moments" in state:
            self.reward_moments.load_state_dict(state["reward_moments"])
        self.step = self.last_saved = state["step"]
        return state.get("wall_time", 0.0)

    def _apply_changed_settings(self, fresh_lrs: list[float]) -> None:
        """What a resume changed wins over what the checkpoint restored: the learning rate
        (the schedule goes on from its step at the new rate) and the KL coefficient."""
        changed = self.resume.changed
        if "training.learning_rate" in changed and hasattr(self.scheduler, "lr_lambdas"):
            rebase_schedule(self.optimizer, self.scheduler, fresh_lrs)
        if "algorithm.kl_coef" in changed:
            self.algo.kl_ctl.value = float(self.cfg.algorithm.kl_coef)

    # ---- the run -----------------------------------------------------------------------

    def start_reward(self) -> None:
        """Last, as it needs `close`: user code gets its worker process here."""
        self.reward.start(self.models.tokenizer)
        self._release_memory = hold_freed_memory(self.models.device)

    def begin(self) -> Iterator[Event]:
        """The run is running; on a fresh run, the starting model is evaluated."""
        yield from self.reward.logs()
        models = self.models
        dtype = str(models.dtype).removeprefix("torch.")
        where = f"{models.source} ({models.device.type}, {dtype})"
        message = f"Training {self.cfg.algorithm.name} on {where}"
        yield Status(RunState.RUNNING, message, self.step, self.total)
        for hint in (
            cpu_bf16_hint(models.device, models.dtype),
            bf16_unpacked_reason(models.device, models.dtype),
            float32_unpacked_reason(models.device, models.dtype),
            truncated_sampling_note(self.cfg.generation),
            self.sampling_note,
        ):
            if hint and self.rank == 0:
                yield Log("info", hint)
        if self.step != 0:
            return
        if not self.heldout_idx:
            yield Log(
                "info",
                "no held-out prompts (data.heldout_fraction or a tiny set): evaluation is skipped",
            )
        elif self._starting_eval_can_wait():
            self.starting_eval_due = True  # after step 1: the first point comes first
        else:
            yield from self.evaluate()

    def _starting_eval_can_wait(self) -> bool:
        """The frozen reference is the starting model, so it can be evaluated after step 1;
        not where evaluation decodes with the algorithm's own (trained) heads, nor sharded."""
        return self.eval_decode is None and not self.fsdp

    def control_point(self) -> Iterator[Event]:
        """Pause, settings changed meanwhile, a stop every rank agrees on, a checkpoint asked
        for: between steps only. (With several processes every rank makes these collectives
        in this order.)"""
        control = self.control
        paused = control.paused
        if paused:
            yield Status(RunState.PAUSED, "Paused", self.step, self.total)
            control.wait_while_paused()
        if not control.stopped:  # before "Resumed", which says the new total
            yield from apply_requested_settings(self)
            if paused:
                yield Status(RunState.RUNNING, "Resumed", self.step, self.total)
        if self.world > 1 and distributed.any_rank(control.stopped):
            control.stop()  # a stop seen by one rank stops them all, at the same step
        control.check()
        wanted = control.take_checkpoint_request()
        if self.world > 1:
            wanted = distributed.any_rank(wanted)
        if wanted and self.step != self.last_saved:
            yield from self.checkpoint()

    def train_step(self) -> Iterator[Event]:
        step_events = offline_step if self.offline else online_step
        skipped, taken = self.algo.skipped_steps, self.algo.optimizer_steps
        for event in step_events(self, self.step + 1):
            yield event
            if isinstance(event, Metrics):
                yield from self._examine(event)
        self.step += 1
        self._count_skipped_updates(skipped, taken)

    def _examine(self, metrics: Metrics) -> Iterator[Event]:
        """The doctor's new findings on this step; one as severe as `doctor.pause_on` stops
        the run at the end of the step, with a checkpoint, so it can be resumed with other
        settings (`rlstudio resume N --set ...`, or the studio's Resume)."""
        pause_on = self.cfg.doctor.pause_on
        for finding in self.doctor.observe(metrics.step, metrics.values):
            yield finding
            if pause_on and finding.rank >= SEVERITIES.index(pause_on) and not self.stop_reason:
                self.stop_reason = (
                    f"Paused by the doctor at step {finding.step} ({finding.severity}: "
                    f"{finding.kind}); change a setting and resume"
                )
                self.control.stop()

    def doctor_updates(self) -> Iterator[Event]:
        """At the run's end: each finding as it stands (the step it was last seen at)."""
        yield from self.doctor.unsent()

    def _count_skipped_updates(self, skipped: int, taken: int) -> None:
        """An update whose optimiser steps were all skipped (a loss or gradient not finite)
        changed nothing: `training.max_skipped_updates` of them in a row stop the run."""
        algo = self.algo
        if algo.skipped_steps > skipped and algo.optimizer_steps == taken:
            self.skipped_in_a_row += 1
        else:
            self.skipped_in_a_row = 0
        limit, n = self.cfg.training.max_skipped_updates, self.skipped_in_a_row
        if limit and n >= limit:
            raise TrainingDiverged(
                f"training stopped at step {self.step}: the last {n} updates were all skipped, "
                "their loss or gradient not finite (inf or NaN), so the model is unchanged "
                f"since step {self.step - n}; lower training.learning_rate, or clip "
                "(algorithm.reward_clip) or scale down the rewards "
                "(training.max_skipped_updates = 0 never stops)"
            )

    def on_cadence(self) -> Iterator[Event]:
        if self.starting_eval_due:
            self.starting_eval_due = False
            yield from self.evaluate(starting=True)
        t, step = self.cfg.training, self.step
        if t.eval_every and step % t.eval_every == 0 and step < self.total:
            yield from self.evaluate()
        if t.checkpoint_every and step % t.checkpoint_every == 0:
            yield from self.checkpoint()

    def evaluate(self, starting: bool = False) -> Iterator[Event]:
        """The held-out evaluation of the policy now, or (`starting`) of the starting model,
        reported at step 0. Its sampling leaves training's random stream as it was, so when
        (and how often) the run evaluates changes nothing about what it trains."""
        # The others go on and wait for it at the next step; with FSDP every forward needs
        # every rank, so all of them evaluate and rank 0's figures are kept.
        if not self.heldout_idx or not (self.rank == 0 or self.fsdp):
            return
        step = 0 if starting else self.step
        which = "the starting model" if starting else f"step {step}"
        yield Log("info", f"evaluating {which} on {len(self.heldout_idx)} held-out prompts")
        yield Evaluating(step, len(self.heldout_idx))
        values, _ = yield from self.reward.scored(
            self.step,
            self.step,
            lambda: self._evaluated(starting),
        )
        yield Metrics(step, self.elapsed(), values)

    def _evaluated(self, starting: bool) -> dict[str, float]:
        cuda = [self.models.device] if self.models.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), self._models_for_eval(starting) as models:
            return evaluate(
                models,
                self.cfg,
                self.prompt_set,
                self.heldout_idx,
                self.reward.reward,
                self.step_control,
                decode=self.eval_decode,
            )

    def _models_for_eval(self, starting: bool):
        return starting_models(self.models) if starting else nullcontext(self.models)

    def held_s(self) -> float:
        """Seconds this run's loop has sat paused (between steps or between tokens)."""
        held = self.control.held_s
        if self.step_control is not self.control:
            held += self.step_control.held_s
        return held

    def elapsed(self) -> float:
        """Seconds of training, counting the time before a resume."""
        return time.perf_counter() - self.started

    # ---- checkpoints and the end -------------------------------------------------------

    def save_if_unsaved(self) -> Iterator[Event]:
        if self.step != self.last_saved:
            yield from self.checkpoint()

    def checkpoint(self) -> Iterator[Event]:
        if self.checkpoint_dir is None:
            return
        models, world = self.models, self.world
        rngs = distributed.gather(rng_state()) if world > 1 else None
        weights = optimizer_state = None
        if self.fsdp:  # every rank lends its shards to rank 0's whole copy
            weights = sharding.full_model_state(models.policy.lm)
            optimizer_state = sharding.full_optimizer_state(models.policy, self.optimizer)
        if self.rank != 0:  # rank 0 alone writes; the others only lent it their RNG states
            self.last_saved = self.step
            return
        state = {
            "optimizer": optimizer_state or self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "algorithm": self.algo.state_dict(),
            "reward_moments": self.reward_moments.state_dict(),
            "wall_time": self.elapsed(),
        }
        if rngs is not None:
            state["rng_ranks"] = rngs
        path = yield from saved_when_there_is_room(
            lambda: save_checkpoint(
                self.checkpoint_dir, self.step, models.policy, models.tokenizer, state, weights
            ),
            self.checkpoint_dir,
            checkpoint_bytes(models.policy),
            self.control,
            self.step,
            self.total,
        )
        if path is None:  # stopped while its disk was full: the previous one stands
            return
        self.owned[self.step] = path
        self.owned = prune(self.owned, self.cfg.training.keep_checkpoints)
        self.last_saved = self.step
        yield Checkpoint(self.step, str(path))

    def close(self) -> None:
        self.reward.close()
        if self._release_memory is not None:
            self._release_memory()


def checkpoint_bytes(policy) -> int:
    """About what a checkpoint of `policy` takes on disk: its weights, and an optimiser
    state of twice as much (Adam's two moments)."""
    return 3 * sum(p.numel() * p.element_size() for p in policy.parameters())


def _check_fsdp(cfg: RunConfig, algo_cls: type[Algorithm], world: int) -> None:
    """What FSDP needs that plain data parallel does not: every forward is a collective, so
    every rank must take an equal share of the prompts and run the same loop."""
    if algo_cls.fsdp_unsupported:
        raise ConfigError(algo_cls.fsdp_unsupported)
    if cfg.generation.sampling_dtype != "float32":
        raise ConfigError(
            f"generation.sampling_dtype = {cfg.generation.sampling_dtype!r} is not available "
            'with FSDP (a copy of a sharded model): use "float32", or run data parallel'
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


def truncated_sampling_note(gen) -> str | None:
    """What top-k / top-p sampling means for the numbers, said once in the run's log."""
    if not gen.top_k and gen.top_p >= 1.0:
        return None
    return (
        "generation.top_k / top_p: completions are drawn from the truncated distribution, "
        "but logprobs, ratios and the KL are computed under the full softmax, "
        "so they slightly understate the sampled tokens' probability"
    )
