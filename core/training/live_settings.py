"""Settings changed while a run goes on (`Control.request_settings`), applied between two
steps: the same ones `rlstudio resume --set` may change (`core.config.RESUMABLE_SETTINGS`),
checked as a resume checks them. A bad value changes nothing and the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from core.config import ConfigError, RunConfig, resumed_with, to_dict
from core.doctor.findings import RunFacts
from core.events import Event, Log, SettingsChanged
from core.training.optimizer import make_schedule, rebase_schedule

if TYPE_CHECKING:
    from core.training.run import TrainingRun


def apply_requested_settings(run: TrainingRun) -> Iterator[Event]:
    """The settings asked for since the last control point, applied to `run`: its config,
    optimiser and schedule, KL controller, sampling, cadence and length."""
    requested = run.control.take_settings()
    if not requested:
        return
    where = f"step {run.step}"
    if run.world > 1:
        yield Log("warning", f"{where}: settings cannot change while several processes train")
        return
    try:
        cfg, changes = checked(run.cfg, requested, run.step)
    except ConfigError as exc:
        yield Log("warning", f"{where}: settings not changed: {exc}")
        return
    if not changes:
        return
    _apply(run, cfg, {key for key, _old, _new in changes})
    change = SettingsChanged(run.step, tuple(changes), dict(to_dict(cfg), base_dir=cfg.base_dir))
    yield change
    yield Log("info", f"{where}: {change.described}")


def checked(
    cfg: RunConfig, requested: dict[str, Any], step: int
) -> tuple[RunConfig, list[tuple[str, Any, Any]]]:
    """`cfg` with the changes and the changes as (key, old, new), or ConfigError: a setting
    no resume may change, a bad value, or steps the run has already trained."""
    new, changes = resumed_with(cfg, requested)
    if new.training.steps <= step:
        raise ConfigError(
            f"training.steps = {new.training.steps}: the run has trained {step} steps "
            f"already; give more than {step}, or stop the run"
        )
    return new, changes


def _apply(run: TrainingRun, cfg: RunConfig, changed: set[str]) -> None:
    old = run.cfg
    run.cfg, run.total = cfg, cfg.training.steps
    if changed & {"training.learning_rate", "training.steps"}:  # the schedule's rate or length
        reschedule(run.optimizer, run.scheduler, cfg, old.training.learning_rate)
    algo = run.algo
    algo.cfg, algo.temperature = cfg.algorithm, cfg.generation.temperature
    if "algorithm.kl_coef" in changed:  # as a resume does: the controller starts there
        algo.kl_ctl.value = float(cfg.algorithm.kl_coef)
    run.doctor.facts = RunFacts.of(cfg)  # its rules read max_new_tokens


def reschedule(optimizer, scheduler, cfg: RunConfig, old_lr: float) -> None:
    """The schedule of `cfg` (its learning rate, its steps) from the step the scheduler is
    at; each parameter group keeps its own multiple of the rate."""
    ratio = cfg.training.learning_rate / old_lr
    # the new schedule's factors, built on a stand-in so the run's optimiser is not touched
    stand_in = torch.optim.SGD(
        [{"params": [torch.zeros(1)]} for _ in optimizer.param_groups], lr=1.0
    )
    scheduler.lr_lambdas = list(make_schedule(cfg, stand_in).lr_lambdas)
    rebase_schedule(optimizer, scheduler, [b * ratio for b in scheduler.base_lrs])
