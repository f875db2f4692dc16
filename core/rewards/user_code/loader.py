"""Load a user's reward file and call it with errors that point at their code.

A user writes a function (``reward`` unless the recipe names another) in one of the forms:

* TRL's: ``def reward_len(completions, **kwargs) -> list[float]``, called by keyword with
  ``prompts``, ``completions``, ``completion_ids`` and every column of the prompt set;
* batched: ``def reward(prompts, completions, **columns) -> list[float]`` (the same call);
* per-sample: ``def reward(prompt, completion, **columns) -> float``.

The per-sample form is the one whose first parameter is named "prompt"; how a batched
function is called is decided from its signature (``calling``). A function without
``**kwargs`` receives only the columns it names, so a simple ``reward(prompt, completion)``
keeps working when the prompt set has extra columns.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.rewards.errors import RewardConfigError, RewardError, RewardSignatureError
from core.rewards.user_code.calling import (
    SignatureMismatch,
    batched_call,
    per_sample_call,
    read_signature,
)

_module_counter = itertools.count()


@dataclass(frozen=True)
class UserReward:
    """A user's reward function, callable in the batched form."""

    path: Path
    fn: Callable[..., Any]
    per_sample: bool
    signature: inspect.Signature | None = None
    function: str = "reward"

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[Any]:
        return call_reward(self, prompts, completions, columns)


def _mismatch(reward: UserReward, exc: SignatureMismatch) -> RewardSignatureError:
    return RewardSignatureError(format_failure(reward.path, f"{reward.function}: {exc}"))


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
    if not reward.per_sample:
        try:
            args, kwargs = batched_call(reward.signature, prompts, completions, columns)
        except SignatureMismatch as exc:
            raise _mismatch(reward, exc) from None
        try:
            return reward.fn(*args, **kwargs)
        except catch as exc:
            raise _runtime_error(reward, exc, None) from exc
    scores: list[Any] = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        try:
            args, row = per_sample_call(
                reward.signature, prompt, completion, {k: v[i] for k, v in columns.items()}
            )
        except SignatureMismatch as exc:
            raise _mismatch(reward, exc) from None
        if on_sample is not None:
            on_sample(i)
        try:
            scores.append(reward.fn(*args, **row))
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


def load_reward_file(path: str | os.PathLike[str], function: str = "reward") -> UserReward:
    """Import ``path`` and return its function ``function`` as a batched callable."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise RewardConfigError(f"reward file not found: {path}")
    module = _import_file(path)
    fn = getattr(module, function, None)
    if fn is None or not callable(fn):
        raise RewardConfigError(_missing_function(path, module, function, fn))
    signature = read_signature(fn)
    return UserReward(path, fn, _is_per_sample(signature), signature, function)


def _missing_function(path: Path, module: Any, function: str, found: Any) -> str:
    defined = sorted(n for n in vars(module) if not n.startswith("_"))
    functions = [n for n in defined if inspect.isfunction(getattr(module, n))]
    listing = ", ".join(defined) if defined else "nothing"
    problem = "is not a function" if found is not None else "is missing"
    name = functions[0] if len(functions) == 1 else "NAME"
    hint = (
        f'name the function to use in the recipe: params = {{ path = "{path.name}", '
        f'function = "{name}" }}'
        if functions and function == "reward"
        else f"define 'def {function}(completions, **kwargs)' (TRL's form), "
        f"'def {function}(prompts, completions, **columns)' or "
        f"'def {function}(prompt, completion, **columns)'"
    )
    return f"reward file {path}: {function!r} {problem}; {hint} (the file defines: {listing})"


def _is_per_sample(signature: inspect.Signature | None) -> bool:
    """The per-sample form: the first positional parameter is named "prompt"."""
    if signature is None:
        return False
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return bool(positional) and positional[0].name == "prompt"
