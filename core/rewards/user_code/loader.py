"""Load a user's reward file and call it with errors that point at their code.

A user writes ``reward`` in one of two forms:

* batched: ``def reward(prompts, completions, **columns) -> list[float]``
* per-sample: ``def reward(prompt, completion, **columns) -> float``

The form is decided by the name of the first parameter ("prompt" means
per-sample, anything else batched). Columns are passed by keyword; a function
without ``**kwargs`` receives only the columns it names, so a simple
``reward(prompt, completion)`` keeps working when the prompt set has extra
columns.

``call_reward`` is the single place that invokes user code. It runs in this
process when a ``UserReward`` is called directly, or in a separate worker
process when the reward is wrapped in ``core.rewards.user_code.sandbox.SandboxedReward``.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.rewards.errors import RewardConfigError, RewardError

_module_counter = itertools.count()


@dataclass(frozen=True)
class UserReward:
    """A user's ``reward`` function, callable in the batched form."""

    path: Path
    fn: Callable[..., Any]
    per_sample: bool
    accepts_any_column: bool = True
    column_names: frozenset[str] = field(default_factory=frozenset)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        return call_reward(self, prompts, completions, columns)


def _columns_for(reward: UserReward, columns: dict[str, Any]) -> dict[str, Any]:
    if reward.accepts_any_column:
        return columns
    return {k: v for k, v in columns.items() if k in reward.column_names}


def _user_lineno(exc: BaseException, path: Path) -> int | None:
    """Line of the deepest traceback frame that lies in the user's file."""
    lineno = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if _same_file(frame.filename, path):
            lineno = frame.lineno
    return lineno


def _same_file(filename: str, path: Path) -> bool:
    try:
        return os.path.normcase(os.path.abspath(filename)) == os.path.normcase(str(path))
    except (TypeError, ValueError):
        return False


def format_failure(
    path: Path, detail: str, lineno: int | None = None, sample_index: int | None = None
) -> str:
    """``"<file> line <n>: <detail> (sample <i>)"``, leaving out what is not known."""
    where = f"{path.name} line {lineno}" if lineno is not None else path.name
    message = f"{where}: {detail}"
    if sample_index is not None:
        message += f" (sample {sample_index})"
    return message


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return f"sys.exit({code}) was called; a reward must return its scores, not exit"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _runtime_error(reward: UserReward, exc: BaseException, sample_index: int | None) -> RewardError:
    lineno = _user_lineno(exc, reward.path)
    message = format_failure(reward.path, _describe(exc), lineno, sample_index)
    return RewardError(message, sample_index=sample_index, lineno=lineno)


def call_reward(
    reward: UserReward,
    prompts: list[str],
    completions: list[str],
    columns: dict[str, Any],
    *,
    catch: tuple[type[BaseException], ...] = (Exception,),
    on_sample: Callable[[int], None] | None = None,
) -> list[Any]:
    """Run user code on a batch and return its raw scores (validated by the caller).

    Any exception from user code becomes a ``RewardError`` naming the line in
    the user's file and, for per-sample rewards, the failing sample.

    ``catch`` widens what is turned into a ``RewardError`` (the sandbox worker
    passes ``BaseException`` so ``sys.exit()`` is reported too); the original
    exception is the error's ``__cause__``. ``on_sample(i)`` is called before each
    sample of a per-sample reward, so a caller can tell which sample a hang or
    crash hit.
    """
    columns = _columns_for(reward, columns)
    if not reward.per_sample:
        try:
            return reward.fn(prompts, completions, **columns)
        except catch as exc:
            raise _runtime_error(reward, exc, None) from exc
    scores: list[Any] = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        row = {k: v[i] for k, v in columns.items()}
        if on_sample is not None:
            on_sample(i)
        try:
            scores.append(reward.fn(prompt, completion, **row))
        except catch as exc:
            raise _runtime_error(reward, exc, i) from exc
    return scores


def _import_file(path: Path) -> Any:
    """Execute the file as a fresh module under a name no other load will reuse."""
    name = f"rlstudio_user_reward_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RewardConfigError(f"reward file cannot be imported (not a Python file?): {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise RewardConfigError(
            f"syntax error in reward file {path} at line {exc.lineno}: {exc.msg}"
        ) from exc
    except Exception as exc:
        sys.modules.pop(name, None)
        lineno = _user_lineno(exc, path)
        where = f" at line {lineno}" if lineno is not None else ""
        raise RewardConfigError(
            f"reward file {path} failed to load{where}: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_reward_file(path: str | os.PathLike[str]) -> UserReward:
    """Import ``path`` and return its ``reward`` function as a batched callable."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise RewardConfigError(f"reward file not found: {path}")
    module = _import_file(path)
    fn = getattr(module, "reward", None)
    if fn is None or not callable(fn):
        defined = sorted(n for n in vars(module) if not n.startswith("_"))
        listing = ", ".join(defined) if defined else "nothing"
        problem = "is not a function" if fn is not None else "is missing"
        raise RewardConfigError(
            f"reward file {path}: 'reward' {problem}; define "
            f"'def reward(prompts, completions, **columns)' or "
            f"'def reward(prompt, completion, **columns)' (the file defines: {listing})"
        )
    per_sample, any_column, names = _inspect_signature(fn)
    return UserReward(path, fn, per_sample, any_column, names)


def _inspect_signature(fn: Callable[..., Any]) -> tuple[bool, bool, frozenset[str]]:
    """Return (per-sample?, accepts **kwargs?, keyword parameter names)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False, True, frozenset()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    per_sample = bool(positional) and positional[0].name == "prompt"
    any_column = any(p.kind is p.VAR_KEYWORD for p in params)
    names = frozenset(
        p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )
    return per_sample, any_column, names
