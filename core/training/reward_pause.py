"""The run's reward inside the loop: what reward code prints becomes Log events, and a
failure pauses the run until the user fixes the code, then scores the same completions
again (so no step is lost or repeated)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from core.config import RunConfig
from core.control import Control
from core.events import Event, Log, RewardFailure, RunState, Status
from core.rewards import CompositeReward, RewardError, build_reward

T = TypeVar("T")


def build_run_reward(cfg: RunConfig, tokenizer=None, on_output=None) -> CompositeReward:
    """The recipe's reward with its time and memory limits. Python rewards start their
    worker processes here: close the result. `on_output(name, text)` gets their prints."""
    return build_reward(
        cfg.reward.components,
        tokenizer=tokenizer,
        base_dir=cfg.base_dir or None,
        time_limit_s=cfg.reward.time_limit_s,
        memory_limit_mb=cfg.reward.memory_limit_mb or None,
        on_output=on_output,
    )


@dataclass
class RunReward:
    """The reward of one run, with the control it pauses and what its code printed."""

    cfg: RunConfig
    control: Control
    reward: CompositeReward | None = None
    output: list[str] = field(default_factory=list)  # printed by reward code, not yet sent

    def start(self, tokenizer) -> None:
        """Build the reward (user code gets its worker process here); `close` stops it."""
        self.reward = build_run_reward(self.cfg, tokenizer, self._collect)

    def close(self) -> None:
        if self.reward is not None:
            self.reward.close()

    def _collect(self, name: str, text: str) -> None:
        several = sum(c.kind == "python" for c in self.cfg.reward.components) > 1
        text = text.rstrip("\n")
        self.output.append(f"[{name}] {text}" if several else text)

    def logs(self) -> Iterator[Event]:
        """What reward code printed since the last call, as Log("reward", text) events."""
        while self.output:
            yield Log("reward", self.output.pop(0))

    def scored(
        self,
        step: int,
        done: int,
        attempt: Callable[[], T],
        prompts: Sequence[str] = (),
        completions: Sequence[str] = (),
    ) -> Generator[Event, None, tuple[T, float]]:
        """`attempt()` (scoring with the run's reward) and the seconds it took.

        If reward code fails and the control pauses on reward errors, the run pauses with
        a `RewardFailure`; on resume the reward files are reloaded and `attempt` runs again
        on the same completions. A stop while paused raises `Stopped`. Otherwise the
        `RewardError` propagates. `done` is the finished step count.
        """
        reload = False
        while True:
            t0 = time.perf_counter()
            try:
                if reload:
                    self.reward.reload()
                value = attempt()
                failure = None
            except RewardError as exc:
                failure = exc
            elapsed = time.perf_counter() - t0
            yield from self.logs()
            if failure is None:
                return value, elapsed
            if not self.control.pause_on_reward_error:
                raise failure
            yield from self._pause_for_fix(failure, step, done, prompts, completions)
            reload = True

    def _pause_for_fix(
        self,
        failure: RewardError,
        step: int,
        done: int,
        prompts: Sequence[str],
        completions: Sequence[str],
    ) -> Iterator[Event]:
        control, total = self.control, self.cfg.training.steps
        i = failure.sample_index
        known = i is not None and 0 <= i < len(completions)
        control.pause()  # before the events, so a resume can only come after them
        yield RewardFailure(
            step,
            str(failure),
            failure.component,
            i,
            failure.lineno,
            prompts[i] if known else None,
            completions[i] if known else None,
        )
        message = f"Reward failed: {failure}. Fix the reward code, then resume."
        yield Status(RunState.PAUSED, message, done, total)
        control.check()
        yield Status(RunState.RUNNING, "Resumed: reloading the reward code", done, total)
