"""A run from start to finish: the loop's events written to the store.

The CLI calls these functions; the studio's worker thread calls the same ones.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from core.config import RunConfig, from_dict, to_dict, validate
from core.control import Control
from core.data import load_prompts
from core.errors import RunStateError
from core.events import (
    Checkpoint,
    Event,
    Log,
    Metrics,
    RewardFailure,
    RunState,
    Samples,
    Status,
)
from core.lm.sources import TINY_RANDOM, resolve_source
from core.parallel import distributed
from core.paths import data_dir
from core.rewards import RewardError
from core.store import RunRecorder, RunStatus, Store
from core.training.loop import build_run_reward, train

EventCallback = Callable[[Event], None]


def checkpoint_root(store: Store, run_id: int) -> Path:
    """Checkpoints live beside a SQLite file, or in the data dir for a server database."""
    url = make_url(store.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(url.database)
        return db.parent / f"{db.stem}-checkpoints" / f"run-{run_id}"
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{url.host or 'local'}-{url.database or 'db'}")
    return data_dir() / "checkpoints" / tag / f"run-{run_id}"


def preflight(cfg: RunConfig, progress: Callable[[str], None] | None = None) -> RunConfig:
    """Check what a user can get wrong before a run row exists: settings, prompts,
    reward code and the model's path. Raises ConfigError / DataError / ModelError /
    RewardConfigError with one clear message."""
    cfg = validate(cfg)
    load_prompts(cfg.data, cfg.base_dir)
    build_run_reward(cfg, _TokenCounter()).close()
    if cfg.model.name != TINY_RANDOM:
        resolve_source(cfg.model.name, progress)
    return cfg


class _TokenCounter:
    """Stands in for the tokenizer when only the reward's settings are being checked."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()


def default_run_name(cfg: RunConfig, recipe: str | None) -> str:
    if cfg.logging.run_name:
        return cfg.logging.run_name
    stem = Path(recipe).stem if recipe else cfg.algorithm.name
    return f"{stem} {datetime.now():%Y-%m-%d %H:%M}"


def start_run(
    cfg: RunConfig,
    store: Store,
    *,
    name: str,
    control: Control | None = None,
    on_event: EventCallback | None = None,
    progress: Callable[[str], None] | None = None,
    on_run_id: Callable[[int], None] | None = None,
) -> int:
    """Create the run row and train to the end (or a stop). Returns the run id.

    ``on_run_id`` hears the new id before training starts (the studio follows the run).
    With several processes (torchrun, accelerate) every one calls this; only rank 0 has a
    store (the others pass None) and creates the row."""
    run_id = None
    if distributed.is_main():
        run_id = store.create_run(
            name=name,
            config=dict(to_dict(cfg), base_dir=cfg.base_dir),
            algorithm=cfg.algorithm.name,
            model=cfg.model.name,
            seed=cfg.training.seed,
            total_steps=cfg.training.steps,
        )
        if on_run_id is not None:
            on_run_id(run_id)
    run_id = distributed.broadcast(run_id)
    _drive(cfg, store, run_id, control, on_event, None, progress)
    return run_id


def run_config(store: Store, run_id: int) -> RunConfig:
    data = dict(store.run_config(run_id))
    base_dir = data.pop("base_dir", "")
    return dataclasses.replace(from_dict(RunConfig, data), base_dir=base_dir)


def resume_run(
    store: Store,
    run_id: int,
    *,
    steps: int | None = None,
    control: Control | None = None,
    on_event: EventCallback | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Carry a run on from its newest checkpoint on disk (or from the start if none).

    With several processes, rank 0 reads the run from its store and tells the others."""
    cfg = resume_from = None
    if distributed.is_main():
        cfg = run_config(store, run_id)
        if steps is not None:
            cfg = validate(
                dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, steps=steps))
            )
            store.set_total_steps(run_id, steps)
        from_step = 0
        if (ckpt := store.newest_checkpoint_on_disk(run_id)) is not None:
            resume_from, from_step = Path(ckpt.path), ckpt.step
        store.delete_after(run_id, from_step)  # those steps are recomputed from the checkpoint
    cfg, resume_from = distributed.broadcast((cfg, resume_from))
    _drive(cfg, store, run_id, control, on_event, resume_from, progress)
    return run_id


def _drive(
    cfg: RunConfig,
    store: Store,
    run_id: int,
    control: Control | None,
    on_event: EventCallback | None,
    resume_from: Path | None,
    progress: Callable[[str], None] | None,
) -> None:
    main = distributed.is_main()
    checkpoint_dir = checkpoint_root(store, run_id) if main else None
    checkpoint_dir = distributed.broadcast(checkpoint_dir)
    events = train(
        cfg, control, checkpoint_dir=checkpoint_dir, resume_from=resume_from, progress=progress
    )
    if not main:  # rank 0 alone writes to the store; the others train beside it
        for event in events:
            if on_event is not None:
                on_event(event)
        return
    store.claim_run(run_id)
    final = RunStatus.FAILED
    # Every write of the run goes through the recorder, in order: a server that is away for
    # a while (PostgreSQL restarting) delays them, and the run goes on.
    recorder = RunRecorder(store, run_id)
    try:
        for event in events:
            _record(recorder, event)
            if isinstance(event, Status) and event.state in (RunState.COMPLETED, RunState.STOPPED):
                final = RunStatus(event.state)
            if on_event is not None:
                on_event(event)
    except KeyboardInterrupt as exc:  # the CLI's second signal names itself
        how = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "Ctrl+C"
        _finish(recorder, RunStatus.STOPPED, f"interrupted ({how})")
        raise
    except RewardError as exc:
        message = (
            f"{exc} (the run is kept up to its last finished step: fix the reward, then "
            f"`rlstudio resume {run_id}` carries it on)"
        )
        _finish(recorder, RunStatus.FAILED, message)
        raise RewardError(
            message, component=exc.component, sample_index=exc.sample_index, lineno=exc.lineno
        ) from exc
    except BaseException as exc:
        _finish(recorder, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    recorder.status(final)
    recorder.close()


def _finish(recorder: RunRecorder, status: RunStatus, error: str) -> None:
    """The run's last status on the way out of an error, without hiding that error."""
    try:
        recorder.status(status, error=error)
        recorder.close()
    except Exception as failure:
        logging.getLogger(__name__).warning("could not record the run's end: %s", failure)


def _record(recorder: RunRecorder, event: Event) -> None:
    if isinstance(event, Metrics):
        recorder.metrics(event.step, event.wall_time, event.values)
    elif isinstance(event, Samples):
        recorder.samples([dataclasses.asdict(s) for s in event.rows])
    elif isinstance(event, Checkpoint):
        # after the rows up to this step: they are safe before the checkpoint is listed
        recorder.checkpoint(event.step, event.path)
    elif isinstance(event, Log):
        recorder.log(event.level, event.message)
    elif isinstance(event, RewardFailure):
        recorder.log("error", f"reward failed at step {event.step}: {event.message}")
    elif isinstance(event, Status) and event.state in (RunState.RUNNING, RunState.PAUSED):
        recorder.status(event.state)


def evaluate_run(store: Store, run_id: int, progress=None) -> dict[str, dict[str, float]]:
    """Evaluate the starting model and the run's newest checkpoint on the run's held-out
    prompts; store both (steps 0 and the checkpoint's) and return {"before", "after"}."""
    import torch

    from core.algorithms import ALGORITHMS
    from core.lm.policy import load_models
    from core.training.checkpoint import load_checkpoint
    from core.training.evaluation import evaluate, heldout_split

    cfg = run_config(store, run_id)
    algo = ALGORITHMS[cfg.algorithm.name]
    ckpt = store.newest_checkpoint_on_disk(run_id)
    if ckpt is None:
        raise RunStateError(f"run {run_id} has no checkpoint on disk to evaluate")
    prompt_set = load_prompts(cfg.data, cfg.base_dir)
    _train, heldout = heldout_split(cfg, prompt_set)
    if not heldout:
        raise RunStateError(
            f"run {run_id} has no held-out prompts (data.heldout_fraction = "
            f"{cfg.data.heldout_fraction}, {len(prompt_set)} prompts)"
        )
    reward = None
    results = {}
    try:
        for label, path, step in (("before", None, 0), ("after", Path(ckpt.path), ckpt.step)):
            torch.manual_seed(cfg.training.seed)  # both sides sample with the same seed
            models = load_models(
                cfg.model,
                value_head=algo.needs_value_head,
                seed=cfg.training.seed,
                progress=progress,
                heads=algo.heads_factory(cfg),
            )
            if path is not None:
                load_checkpoint(path, models.policy)
            reward = reward or build_run_reward(cfg, models.tokenizer)
            decode = algo.decoder(cfg, explore=False)
            results[label] = evaluate(models, cfg, prompt_set, heldout, reward, decode=decode)
            store.add_metrics(run_id, [(step, 0.0, results[label])])
    finally:
        if reward is not None:
            reward.close()
    return results


def rate_completions(cfg: RunConfig, out: Path, per_prompt: int = 1, progress=None) -> int:
    """Sample completions from the recipe's model and score them with its reward: a rated
    data set for offline Q-learning (.jsonl with prompt, completion, reward, components)."""
    import json

    import torch

    from core.data import format_prompt
    from core.generation.rollout import generate_rollout
    from core.lm.policy import load_models

    torch.manual_seed(cfg.training.seed)
    models = load_models(cfg.model, value_head=False, seed=cfg.training.seed, progress=progress)
    prompt_set = load_prompts(cfg.data, cfg.base_dir)
    order = [i for i in range(len(prompt_set)) for _ in range(per_prompt)]
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with build_run_reward(cfg, models.tokenizer) as reward, out.open("w", encoding="utf-8") as fh:
        for start in range(0, len(order), cfg.training.batch_size):
            idx = order[start : start + cfg.training.batch_size]
            prompts, columns = prompt_set.batch(idx)
            texts = [format_prompt(models.tokenizer, p, cfg.data.chat_template) for p in prompts]
            rollout = generate_rollout(models, texts, cfg.generation, cfg.data.max_prompt_tokens)
            result = reward(prompts, rollout.completions, **rollout.reward_columns(columns))
            for i, (prompt, completion) in enumerate(zip(prompts, rollout.completions)):
                row = {
                    "prompt": prompt,
                    "completion": completion,
                    "reward": result.total[i],
                    "components": {k: v[i] for k, v in result.components.items()},
                }
                fh.write(json.dumps(row) + "\n")
                written += 1
            if progress:
                progress(f"rated {written}/{len(order)}")
    return written
