"""RL Studio's engine: models, rollouts, algorithms, rewards and the run store (no Qt).

This is the engine's public face: the studio, the CLI and scripts use the names below
(and the faces of `core.config`, `core.events`, `core.store`, `core.rewards`, `core.lm`,
`core.data`). They are imported on first use (PEP 562), so that `import core` stays light:
the reward worker process imports `core.rewards` and must not load torch with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The one place the version lives: pyproject.toml reads it (hatch), runs record it, and a
# frozen app (which has no package metadata) can still report it.
__version__ = "0.2.0"

if TYPE_CHECKING:
    from core.config import RESUMABLE_SETTINGS, RunConfig, load_config, validate, with_overrides
    from core.control import Control, Stopped
    from core.errors import USER_ERRORS, RunStateError
    from core.events import Event, RunState
    from core.exports import export_metrics, export_run_model, export_samples
    from core.runner import (
        default_run_name,
        delete_run,
        preflight,
        restart_run,
        resume_point,
        resume_run,
        start_run,
    )
    from core.store import RunStatus, Store
    from core.training.loop import train

_LAZY = {
    "RESUMABLE_SETTINGS": "core.config",
    "RunConfig": "core.config",
    "load_config": "core.config",
    "validate": "core.config",
    "with_overrides": "core.config",
    "Control": "core.control",
    "Stopped": "core.control",
    "USER_ERRORS": "core.errors",
    "RunStateError": "core.errors",
    "Event": "core.events",
    "RunState": "core.events",
    "export_metrics": "core.exports",
    "export_run_model": "core.exports",
    "export_samples": "core.exports",
    "default_run_name": "core.runner",
    "delete_run": "core.runner",
    "preflight": "core.runner",
    "restart_run": "core.runner",
    "resume_point": "core.runner",
    "resume_run": "core.runner",
    "start_run": "core.runner",
    "RunStatus": "core.store",
    "Store": "core.store",
    "train": "core.training.loop",
}

__all__ = [
    "RESUMABLE_SETTINGS",
    "USER_ERRORS",
    "Control",
    "Event",
    "RunConfig",
    "RunState",
    "RunStateError",
    "RunStatus",
    "Stopped",
    "Store",
    "__version__",
    "default_run_name",
    "delete_run",
    "export_metrics",
    "export_run_model",
    "export_samples",
    "load_config",
    "preflight",
    "restart_run",
    "resume_point",
    "resume_run",
    "start_run",
    "train",
    "validate",
    "with_overrides",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
