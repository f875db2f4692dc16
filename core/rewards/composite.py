"""Combine several rewards into one weighted score and check what each returns.

Every component's output is validated here, so a broken reward fails with a
message naming it and the sample, instead of a NaN silently poisoning training.
User code ("python" components) runs in a ``SandboxedReward`` worker process:
close the composite (or use it in a ``with`` block) to stop those workers.

Prompts may be text or chats (lists of ``{"role", "content"}`` messages). User code sees
them as TRL's reward functions do: chats as message lists, and then each completion as
``[{"role": "assistant", "content": text}]``. Built-ins and judges read the text.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data import as_chats, chat_text
from core.rewards.builtin.builtins import BUILTINS
from core.rewards.errors import RewardConfigError, RewardError
from core.rewards.scores import validate_scores
from core.rewards.user_code.sandbox import (
    DEFAULT_MEMORY_LIMIT_MB,
    DEFAULT_TIME_LIMIT_S,
    SandboxedReward,
)

PYTHON_KIND = "python"
OutputCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class RewardComponent:
    """One named, weighted reward inside a composite."""

    name: str
    weight: float
    fn: Callable[..., Any]
    user_code: bool = False  # called as TRL calls rewards: chats stay message lists


@dataclass(frozen=True)
class RewardResult:
    """Scores for one batch: the weighted total and each component's raw scores."""

    total: list[float]
    components: dict[str, list[float | None]]  # None: that reward does not apply there


class CompositeReward:
    """A weighted sum of reward components: ``total = sum(weight * score)``, over the
    components that scored the sample (a component may return None: "not applicable")."""

    def __init__(self, components: Iterable[RewardComponent]) -> None:
        self.components = list(components)
        if not self.components:
            raise RewardConfigError("no rewards configured; add at least one reward")
        seen: set[str] = set()
        for c in self.components:
            if c.name in seen:
                raise RewardConfigError(
                    f"duplicate reward name '{c.name}'; give each reward a distinct name"
                )
            seen.add(c.name)
            _check_weight(c.name, c.weight)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    def reload(self) -> None:
        """Re-read user reward files (restarting their workers) so edited code is used.

        Raises ``RewardError`` naming the component if a file no longer loads.
        """
        for c in self.components:
            if not hasattr(c.fn, "reload"):
                continue
            try:
                c.fn.reload()
            except (RewardConfigError, RewardError) as exc:
                raise RewardError(f"reward '{c.name}': {exc}", component=c.name) from exc

    def close(self) -> None:
        """Stop the components' worker processes; a later call starts them again."""
        _close(self.components)

    def __enter__(self) -> CompositeReward:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> RewardResult:
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"got {len(prompts)} prompts for {n} completions")
        for key, values in columns.items():
            if len(values) != n:
                raise ValueError(f"column '{key}' has {len(values)} values for {n} completions")
        total = [0.0] * n
        scored = [False] * n
        per_component: dict[str, list[float | None]] = {}
        as_text = [chat_text(p) for p in prompts]
        chats = as_chats(prompts, completions)
        for c in self.components:
            batch = chats if c.user_code else (as_text, completions)
            scores = validate_scores(c.name, _run(c, *batch, columns), n)
            per_component[c.name] = scores
            for i, s in enumerate(scores):
                if s is not None:
                    total[i] = _added(total[i], c, s, i)
                    scored[i] = True
        _check_range(self.components, per_component, total)
        if not all(scored):
            i = scored.index(False)
            raise RewardError(
                f"no reward scored sample {i} (every reward returned None for it): "
                f"{completions[i][:80]!r}; return a number for it from at least one reward",
                sample_index=i,
            )
        return RewardResult(total=total, components=per_component)


def _run(
    c: RewardComponent, prompts: list[str], completions: list[str], columns: dict[str, Any]
) -> Any:
    """Call one component, labelling any failure with the component's name."""
    try:
        return c.fn(list(prompts), list(completions), **columns)
    except RewardError as exc:
        if exc.component == c.name:  # already labelled (a bad value found in the worker)
            raise
        raise type(exc)(
            f"reward '{c.name}': {exc}",
            component=c.name,
            sample_index=exc.sample_index,
            lineno=exc.lineno,
        ) from exc
    except Exception as exc:
        raise RewardError(
            f"reward '{c.name}': {type(exc).__name__}: {exc}", component=c.name
        ) from exc


# Training holds the totals as 32-bit floats: a larger one would be inf there.
TOTAL_LIMIT = 3.4e38


def _added(total: float, c: RewardComponent, score: float, i: int) -> float:
    """`total + weight * score`, or a RewardError naming the component that made it inf."""
    new = total + c.weight * score
    if math.isfinite(new):
        return new
    raise _too_large(c, score, i, new)


def _check_range(
    components: list[RewardComponent], scores: dict[str, list[float | None]], total: list[float]
) -> None:
    """A total past what a 32-bit float holds names its largest part."""
    for i, value in enumerate(total):
        if abs(value) > TOTAL_LIMIT:
            parts = [(c, scores[c.name][i]) for c in components if scores[c.name][i] is not None]
            c, score = max(parts, key=lambda part: abs(part[0].weight * part[1]))
            raise _too_large(c, score, i, value)


def _too_large(c: RewardComponent, score: float, i: int, total: float) -> RewardError:
    return RewardError(
        f"reward '{c.name}': weight {c.weight:g} x score {score:g} for sample {i} makes the "
        f"total reward {total:g}, past the {TOTAL_LIMIT:g} training can hold; scale the reward "
        "or its weight down",
        component=c.name,
        sample_index=i,
    )


def _close(components: Iterable[RewardComponent]) -> None:
    for c in components:
        close = getattr(c.fn, "close", None)
        if close is not None:
            close()


def _check_weight(name: str, weight: Any) -> float:
    if (
        isinstance(weight, bool)
        or not isinstance(weight, numbers.Real)
        or not math.isfinite(float(weight))
    ):
        raise RewardConfigError(
            f"reward '{name}': parameter 'weight' must be a finite number, got {weight!r}"
        )
    return float(weight)


def _python_path(params: Mapping[str, Any], base_dir: Path | None) -> Path:
    unknown = [k for k in params if k not in ("path", "function")]
    if unknown:
        raise RewardConfigError(
            f"python: unknown parameter '{unknown[0]}' (allowed parameters: path, function)"
        )
    function = params.get("function", "reward")
    if not isinstance(function, str) or not function.isidentifier():
        raise RewardConfigError(
            f"python: parameter 'function' must be the name of a function in the file, "
            f"got {function!r}"
        )
    raw = params.get("path")
    if not isinstance(raw, (str, os.PathLike)) or not str(raw):
        raise RewardConfigError(
            f"python: parameter 'path' must be the path of a .py file, got {raw!r}"
        )
    path = Path(raw).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


def _build_builtin(
    kind: str, name: str, params: dict[str, Any], tokenizer: Any
) -> Callable[..., Any]:
    """Call the built-in factory; errors name the component when it was renamed."""
    try:
        if "tokenizer" in params:
            raise RewardConfigError(
                f"{kind}: unknown parameter 'tokenizer' (the model's tokenizer is used)"
            )
        return BUILTINS[kind](tokenizer=tokenizer, **params)
    except RewardConfigError as exc:
        if name == kind:
            raise
        raise RewardConfigError(f"reward '{name}': {exc}") from exc


def build_reward(
    components_cfg: Iterable[Any],
    tokenizer: Any = None,
    base_dir: str | os.PathLike[str] | None = None,
    *,
    time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
    memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
    on_output: OutputCallback | None = None,
) -> CompositeReward:
    """Build a ``CompositeReward`` from config objects with kind, name, weight and params.

    ``kind`` is a built-in name or "python"; an empty ``name`` defaults to the
    kind (or the file stem for python). Relative python paths resolve against
    ``base_dir`` (usually the recipe's folder), else the working directory.

    Each python file is loaded now in its own worker process (a file that does
    not load raises ``RewardConfigError``), with ``time_limit_s`` per batch and
    ``memory_limit_mb`` of address space (``None``: no limit).
    ``on_output(name, text)`` receives what the code prints. Close the result.
    """
    components: list[RewardComponent] = []
    try:
        for cfg in components_cfg:
            components.append(
                _build_component(cfg, tokenizer, base_dir, time_limit_s, memory_limit_mb, on_output)
            )
        return CompositeReward(components)
    except BaseException:
        _close(components)  # stop the workers already started
        raise


def _build_component(
    cfg: Any,
    tokenizer: Any,
    base_dir: str | os.PathLike[str] | None,
    time_limit_s: float | None,
    memory_limit_mb: int | None,
    on_output: OutputCallback | None,
) -> RewardComponent:
    kind = cfg.kind
    if cfg.name is not None and not isinstance(cfg.name, str):
        raise RewardConfigError(f"{kind}: 'name' must be a string, got {cfg.name!r}")
    if cfg.params is not None and not isinstance(cfg.params, Mapping):
        raise RewardConfigError(f"{kind}: 'params' must be a table, got {cfg.params!r}")
    params = dict(cfg.params or {})
    if kind == PYTHON_KIND:
        path = _python_path(params, Path(base_dir) if base_dir else None)
        name = cfg.name or path.stem
        weight = _check_weight(name, cfg.weight)
        fn = SandboxedReward(
            path,
            time_limit_s,
            memory_limit_mb,
            on_output=(lambda text: on_output(name, text)) if on_output else None,
            name=name,
            function=params.get("function", "reward"),
        )
        fn.start()
        return RewardComponent(name, weight, fn, user_code=True)
    elif kind in BUILTINS:
        name = cfg.name or kind
        weight = _check_weight(name, cfg.weight)
        fn = _build_builtin(kind, name, params, tokenizer)
    else:
        allowed = ", ".join([*sorted(BUILTINS), PYTHON_KIND])
        raise RewardConfigError(f"unknown reward kind {kind!r} (allowed kinds: {allowed})")
    return RewardComponent(name, weight, fn)
