"""How a user's reward function is called: by keyword as TRL calls it, or by position in
this project's older form, decided from the function's signature.

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)``: every
argument by keyword, so ``def reward_len(completions, **kwargs)`` works. This project's
first form, ``reward(prompts, completions, **columns)``, names the same two arguments, so
it is called by keyword too and sees the same values. A function whose parameters are not
among those names (``def reward(texts, outputs)``) is called by position, as before.

The call is planned (and checked with ``Signature.bind``) before any user code runs, so a
signature that cannot take a batch is told apart from a ``TypeError`` inside the code.
"""

from __future__ import annotations

import inspect
from typing import Any

TRL_ARGUMENTS = ("prompts", "completions", "completion_ids")
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class SignatureMismatch(Exception):
    """The function cannot be called with a batch; the message says why."""


def batched_call(
    signature: inspect.Signature | None,
    prompts: list[Any],
    completions: list[Any],
    columns: dict[str, Any],
) -> tuple[tuple, dict[str, Any]]:
    """The (args, kwargs) a batched reward is called with, or ``SignatureMismatch``."""
    offered = {"prompts": prompts, "completions": completions, **columns}
    if signature is None:  # a builtin or C callable: no signature to read
        return (prompts, completions), dict(columns)
    params = list(signature.parameters.values())
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in _NAMED}
    if _by_keyword(params, offered, takes_any, named):
        args: tuple = ()
        kwargs = offered if takes_any else {k: v for k, v in offered.items() if k in named}
    else:
        args = (prompts, completions)
        kwargs = columns if takes_any else {k: v for k, v in columns.items() if k in named}
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise SignatureMismatch(_explain(signature, offered, exc)) from None
    return args, kwargs


def per_sample_call(
    signature: inspect.Signature | None, prompt: Any, completion: Any, row: dict[str, Any]
) -> tuple[tuple, dict[str, Any]]:
    """The (args, kwargs) of ``reward(prompt, completion, **row)`` for one sample."""
    if signature is None:
        return (prompt, completion), dict(row)
    params = list(signature.parameters.values())
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        named = {p.name for p in params if p.kind in _NAMED}
        row = {k: v for k, v in row.items() if k in named}
    try:
        signature.bind(prompt, completion, **row)
    except TypeError as exc:
        offered = {"prompt": prompt, "completion": completion, **row}
        raise SignatureMismatch(_explain(signature, offered, exc)) from None
    return (prompt, completion), row


def _by_keyword(params: list, offered: dict, takes_any: bool, named: set[str]) -> bool:
    """TRL's way when the function names `completions` or `completion_ids` (a TRL reward
    always does, or takes **kwargs), or when everything it needs is on offer by name and it
    names `prompts` or takes any keyword. Otherwise this project's first form, by position
    (`def reward(prompts, outputs)` stays as it was)."""
    if named & {"completions", "completion_ids"}:
        return True
    for p in params:
        required = p.default is p.empty
        if p.kind is p.POSITIONAL_ONLY and required:
            return False
        if p.kind in _NAMED and required and p.name not in offered:
            return False
    return takes_any or "prompts" in named


def _explain(signature: inspect.Signature, offered: dict, exc: TypeError) -> str:
    columns = [k for k in offered if k not in ("prompts", "completions", "prompt", "completion")]
    listing = ", ".join(columns) or "none"
    return (
        f"the function's parameters {signature} cannot take a batch ({exc}); name them "
        f"prompts, completions, completion_ids or a column ({listing}) and add **kwargs, "
        "as TRL's reward functions do, or write reward(prompts, completions, **columns)"
    )


def read_signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None
