"""A run from start to finish: the loop's events written to the store.

The CLI calls these functions; the studio's worker thread calls the same ones.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from core.config import RunConfig, from_dict, resumed_with, to_dict, validate, with_overrides
from core.control import Control
from core.data import load_prompts
from core.errors import RunStateError
from core.events import (
    Checkpoint,
    Event,
    Finding,
    Log,
    Metrics,
    RewardFailure,
    RunState,
    Samples,
    SettingsChanged,
    Status,
    describe_changes,
)
from core.lm.sources import TINY_RANDOM, resolve_source
from core.parallel import distributed
from core.paths import data_dir
from core.rewards import RewardError
from core.rewards.trial import trial_call
from core.store import CheckpointInfo, RunRecorder, RunStatus, Store
from core.trackers import TrackedRun, TrackerSink, open_trackers
from core.training.checkpoint import newest_usable
from core.training.loop import Resume, build_run_reward, train

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
    reward code (loaded, and called once on a dummy batch) and the model's path. Raises
    ConfigError / DataError / ModelError / RewardConfigError with one clear message."""
    cfg = validate(cfg)
    prompt_set = load_prompts(cfg.data, cfg.base_dir)
    with build_run_reward(cfg, _TokenCounter()) as reward:
        trial_call(reward, prompt_set)  # a reward that cannot take a batch: no run row
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
    parent_run_id: int | None = None,
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
            parent_run_id=parent_run_id,
        )
        store.claim_run(run_id)
        if parent_run_id is not None:
            store.log(run_id, "info", f"a fresh start of run {parent_run_id}'s settings")
            store.log(parent_run_id, "info", f"started over as run {run_id}")
        if on_run_id is not None:
            on_run_id(run_id)
    run_id = distributed.broadcast(run_id)
    _drive(cfg, store, run_id, control, on_event, Resume(), progress)
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
    overrides: Mapping[str, Any] | None = None,
    control: Control | None = None,
    on_event: EventCallback | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Carry a run on from its newest checkpoint on disk.

    `overrides` ({"training.learning_rate": 1e-5}) may change the settings of
    `core.config.RESUMABLE_SETTINGS` (others: ConfigError); the change is stored on the
    run and written to its log. A run another process trains raises RunBusy; a run with
    recorded steps and no checkpoint on disk raises RunStateError and keeps everything
    (`restart_run` starts it over as a new run). With several processes, rank 0 reads the
    run from its store and tells the others."""
    cfg = resume = None
    if distributed.is_main():
        cfg, resume = _claim_for_resume(store, run_id, steps, overrides or {})
    cfg, resume = distributed.broadcast((cfg, resume))
    _drive(cfg, store, run_id, control, on_event, resume, progress)
    return run_id


def _claim_for_resume(
    store: Store, run_id: int, steps: int | None, overrides: Mapping[str, Any]
) -> tuple[RunConfig, Resume]:
    """Claims the run (exactly one process gets it), checks it can go on, then readies
    its store for the steps the checkpoint recomputes. A refusal leaves it as it was."""
    overrides = dict(overrides)
    if steps is not None:
        overrides["training.steps"] = steps
    cfg, changes = resumed_with(run_config(store, run_id), overrides)
    claim = store.claim_run(run_id)
    try:
        point = resume_point(store, run_id)
        _check_resumable(store, run_id, point)
    except RunStateError:
        store.unclaim_run(run_id, claim)  # as it was: nothing changed
        raise
    ckpt = point.checkpoint
    from_step = 0 if ckpt is None else ckpt.step
    store.delete_after(run_id, from_step)  # those steps are recomputed from the checkpoint
    if changes:
        store.set_config(run_id, dict(to_dict(cfg), base_dir=cfg.base_dir), cfg.training.steps)
        store.log(run_id, "info", f"resumed with {describe_changes(changes)}")
    recorded = {c.step: Path(c.path) for c in store.checkpoints(run_id)}
    checkpoint = None if ckpt is None else Path(ckpt.path)
    changed = frozenset(key for key, _o, _n in changes)
    return cfg, Resume(checkpoint, recorded, changed, point.lines(), tuple(store.findings(run_id)))


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """Where a resume carries on: the newest checkpoint that verifies (None: none does),
    the newer ones passed over ((step, why) each), and whether any folder was there."""

    checkpoint: CheckpointInfo | None
    skipped: tuple[tuple[int, str], ...] = ()
    any_on_disk: bool = False

    def lines(self) -> tuple[str, ...]:
        return tuple(f"skipped checkpoint step {step}: {why}" for step, why in self.skipped)


def resume_point(store: Store, run_id: int) -> ResumePoint:
    """The checkpoint `resume_run` would carry `run_id` on from (each file present with the
    size and checksum saved with it, its state readable), and why newer ones are not."""
    recorded = store.checkpoints(run_id)
    found, skipped = newest_usable((c.step, Path(c.path)) for c in recorded)
    chosen = next((c for c in recorded if found is not None and c.step == found[0]), None)
    on_disk = any(Path(c.path).is_dir() for c in recorded)
    return ResumePoint(chosen, tuple(skipped), on_disk)


def usable_checkpoint(
    store: Store, run_id: int, purpose: str, say: Callable[[str], None] | None = None
) -> CheckpointInfo:
    """The newest checkpoint that verifies, for evaluating or exporting; `say` hears a line
    for each newer one skipped. None usable: RunStateError naming why."""
    point = resume_point(store, run_id)
    if point.checkpoint is None:
        why = "; ".join(f"step {step}: {reason}" for step, reason in point.skipped)
        which = "usable checkpoint" if point.any_on_disk else "checkpoint on disk"
        raise RunStateError(
            f"run {run_id} has no {which} to {purpose}" + (f" ({why})" if point.any_on_disk else "")
        )
    for line in point.lines() if say is not None else ():
        say(line)
    return point.checkpoint


def _check_resumable(store: Store, run_id: int, point: ResumePoint) -> None:
    """A run that has trained steps needs a usable checkpoint to go on from: starting it
    over in place would delete them."""
    info = store.run(run_id)
    if info.last_step <= 0 or point.checkpoint is not None:
        return
    kept = (
        f"its {info.last_step} recorded steps are kept. `rlstudio resume {run_id} "
        "--from-scratch` trains it again as a new run"
    )
    if point.any_on_disk:
        why = "; ".join(f"step {step}: {reason}" for step, reason in point.skipped)
        raise RunStateError(f"run {run_id} has no usable checkpoint to resume from ({why}); {kept}")
    raise RunStateError(
        f"run {run_id} has no checkpoint on disk to resume from (looked in "
        f"{checkpoint_root(store, run_id)}); {kept}"
    )


def restart_run(
    store: Store,
    run_id: int,
    *,
    overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    control: Control | None = None,
    on_event: EventCallback | None = None,
    progress: Callable[[str], None] | None = None,
    on_run_id: Callable[[int], None] | None = None,
) -> int:
    """Train run `run_id`'s settings again from the start, as a new run linked to it
    (`parent_run_id`); the old run and all it recorded stay as they are. `overrides` may
    change any setting. Returns the new run's id."""
    cfg = new_name = None
    if distributed.is_main():
        cfg = run_config(store, run_id)
        if overrides:
            cfg = with_overrides(cfg, dict(overrides))
        cfg = preflight(cfg, progress)
        new_name = name or f"{store.run(run_id).name} (again)"
    cfg, new_name = distributed.broadcast((cfg, new_name))
    return start_run(
        cfg,
        store,
        name=new_name,
        control=control,
        on_event=on_event,
        progress=progress,
        on_run_id=on_run_id,
        parent_run_id=run_id,
    )


def delete_run(store: Store, run_id: int) -> list[Path]:
    """Deletes a run: its rows (metrics, samples, checkpoints, logs) and its checkpoint
    folders. Refuses (RunBusy) a run another process, or this one, is training. Returns
    the folders removed. The studio's Delete calls this after its question."""
    folders = {checkpoint_root(store, run_id)} | {
        Path(c.path) for c in store.checkpoints(run_id) if Path(c.path).name.startswith("step_")
    }
    store.claim_run(run_id)  # no one trains it while it goes
    store.delete_run(run_id)
    removed = []
    for folder in sorted(folders):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _drive(
    cfg: RunConfig,
    store: Store,
    run_id: int,
    control: Control | None,
    on_event: EventCallback | None,
    resume: Resume,
    progress: Callable[[str], None] | None,
) -> None:
    """Trains the run this process has claimed (rank 0) and records what it does."""
    main = distributed.is_main()
    checkpoint_dir = checkpoint_root(store, run_id) if main else None
    checkpoint_dir = distributed.broadcast(checkpoint_dir)
    events = train(cfg, control, checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)
    if not main:  # rank 0 alone writes to the store; the others train beside it
        for event in events:
            if on_event is not None:
                on_event(event)
        return
    final = RunStatus.FAILED
    # Every write of the run goes through the recorder, in order: a server that is away for
    # a while (PostgreSQL restarting) delays them, and the run goes on.
    recorder = RunRecorder(store, run_id)
    heartbeat = Heartbeat(store, run_id)
    trackers = _open_trackers(cfg, store, run_id, recorder, on_event)
    try:
        for event in events:
            _record(recorder, event)
            trackers.on_event(event)
            if recorder.store_full and not (control is not None and control.stopped):
                _wait_for_space(recorder, control, on_event, event, cfg.training.steps)
            if isinstance(event, Status) and event.state in (RunState.COMPLETED, RunState.STOPPED):
                final = RunStatus(event.state)
            if on_event is not None:
                on_event(event)
    except KeyboardInterrupt as exc:  # the CLI's second signal names itself
        heartbeat.close()
        how = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "Ctrl+C"
        _finish(recorder, RunStatus.STOPPED, f"interrupted ({how})")
        raise
    except RewardError as exc:
        heartbeat.close()
        message = (
            f"{exc} (the run is kept up to its last finished step: fix the reward, then "
            f"`rlstudio resume {run_id}` carries it on)"
        )
        _finish(recorder, RunStatus.FAILED, message)
        raise RewardError(
            message, component=exc.component, sample_index=exc.sample_index, lineno=exc.lineno
        ) from exc
    except BaseException as exc:
        heartbeat.close()
        _finish(recorder, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        trackers.close()
    heartbeat.close()
    recorder.status(final)
    recorder.close()


def _open_trackers(
    cfg: RunConfig,
    store: Store,
    run_id: int,
    recorder: RunRecorder,
    on_event: EventCallback | None,
) -> TrackerSink:
    """`logging.report_to`'s trackers (rank 0 only), writing under the run's folder; what
    they say (where they write, or why one is off) goes to the run's log and the caller,
    after how many processes train."""

    def say(level: str, message: str) -> None:
        recorder.log(level, message)
        if on_event is not None:
            on_event(Log(level, message))

    say("info", f"training on {distributed.describe()}")
    folder = checkpoint_root(store, run_id)
    config = dict(to_dict(cfg), run_id=run_id)
    run = TrackedRun(run_id, store.run(run_id).name, config, folder, folder.parent)
    return open_trackers(cfg.logging.report_to, run, say)


def _wait_for_space(
    recorder: RunRecorder,
    control: Control | None,
    on_event: EventCallback | None,
    event: Event,
    total: int,
) -> None:
    """A full store pauses the run here, where it hands on its events: the loop is not asked
    for the next one, so it trains no step whose rows could not be kept and holds no more
    of them in memory, until every row kept is written. A stop asked meanwhile goes on to
    the loop's own stop (a checkpoint, then the end, written once there is space)."""
    tell = on_event or (lambda _event: None)
    step = getattr(event, "step", 0)
    tell(Status(RunState.PAUSED, recorder.full_message(), step, total))
    if recorder.wait_for_space(lambda: control is not None and control.stopped):
        tell(Status(RunState.RUNNING, "Resumed: the store has space again", step, total))


class Heartbeat:
    """Keeps the claimed run's heartbeat fresh while a long step, a download or an
    evaluation writes nothing (another host takes a run over only once it is stale)."""

    def __init__(self, store: Store, run_id: int, every_s: float = 60.0) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(store, run_id, every_s), name=f"heartbeat-{run_id}"
        )
        self._thread.daemon = True
        self._thread.start()

    def _beat(self, store: Store, run_id: int, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                store.touch(run_id)
            except Exception as failure:  # the recorder says what matters about the store
                logging.getLogger(__name__).debug("heartbeat of run %s: %s", run_id, failure)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


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
    elif isinstance(event, Finding):
        recorder.finding(event)
    elif isinstance(event, SettingsChanged):
        recorder.settings_changed(event)
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
    ckpt = usable_checkpoint(store, run_id, "evaluate", progress)
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
