"""The CLI's progress: a live bar in a terminal (rich), one plain line per step elsewhere.

Under nohup, SLURM or `> run.log` nobody sees a bar redraw, and rich would fill the file
with frames; there each step is one line (step, reward, KL, s/step), flushed as it is
written, so `tail -f` shows the run while it goes on."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.doctor import one_line
from core.events import Event, Finding, Log, Metrics, RunState, Status

# What a step shows, when the step logged it: (metric, label, format).
STATS = (
    ("reward/mean", "reward", "+.3f"),
    ("objective/kl", "kl", ".3f"),
    ("loss/total", "loss", ".3f"),
)


def step_stats(values: dict[str, float]) -> str:
    parts = [f"{label} {values[key]:{fmt}}" for key, label, fmt in STATS if key in values]
    parts.append(f"{values.get('time/rollout_s', 0) + values['time/update_s']:.1f}s/step")
    return "  ".join(parts)


def eval_stats(values: dict[str, float]) -> str:
    shown = {k.removeprefix("eval/"): x for k, x in values.items() if k.startswith("eval/")}
    return "  ".join(f"{k} {x:.3g}" for k, x in sorted(shown.items()))


def console_progress(total_steps: int, stream: TextIO | None = None):
    """The live bar when `stream` (stderr) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return LiveProgress(total_steps, stream)
    return LineProgress(total_steps, stream)


class LineProgress:
    """One line per event worth a line, flushed at once."""

    def __init__(self, total_steps: int, stream: TextIO) -> None:
        self.total = total_steps
        self._stream = stream
        self._last_percent = -1
        self._said: set[tuple[str, int, str]] = set()  # findings printed: (kind, step, severity)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self._stream.flush()

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def say(self, message: str) -> None:
        if message.endswith("%"):  # a conversion's percentage: every tenth is enough
            number = message[:-1].rpartition(" ")[2]
            if number.isdigit():
                if int(number) // 10 == self._last_percent // 10:
                    return
                self._last_percent = int(number)
        self._line(message)

    def on_event(self, event: Event) -> None:
        if isinstance(event, Metrics):
            v = event.values
            if "time/update_s" not in v:  # an evaluation
                self._line(f"eval at step {event.step}: {eval_stats(v)}")
            else:
                self._line(f"step {event.step}/{self.total}  {step_stats(v)}")
        elif isinstance(event, Status):
            self.total = event.total_steps or self.total
            if event.message and event.state != RunState.RUNNING:
                self._line(f"{event.state}: {event.message}")
        elif isinstance(event, Log):
            self._line(f"[{event.level}] {event.message}")
        elif isinstance(event, Finding):  # new or grown more severe: one line (updates: none)
            said = (event.kind, event.step, event.severity)
            if said not in self._said:
                self._said.add(said)
                self._line(one_line(event))


class LiveProgress:
    def __init__(self, total_steps: int, stream: TextIO) -> None:
        self.console = Console(file=stream)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task(RunState.LOADING.value, total=total_steps, stats="")
        self._started = False
        self._said: set[tuple[str, int, str]] = set()  # findings printed: (kind, step, severity)

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self.progress.stop()

    def _start(self) -> None:
        """The line appears with the run's first word: a refused resume shows none."""
        if not self._started:
            self._started = True
            self.progress.start()

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def say(self, message: str) -> None:
        self._start()
        if message.endswith("%"):  # a conversion's percentage: the live line, not a new line
            self.progress.update(self.task, description=message)
            return
        self._print(message)

    def on_event(self, event: Event) -> None:
        self._start()
        if isinstance(event, Metrics):
            v = event.values
            if "time/update_s" not in v:  # an evaluation: one line of its own
                self._print(f"eval at step {event.step}: {eval_stats(v)}")
                return
            self.progress.update(self.task, completed=event.step, stats=step_stats(v))
        elif isinstance(event, Status):
            self.progress.update(
                self.task,
                description=event.state,
                completed=event.step,
                total=event.total_steps or None,
            )
            if event.message and event.state != RunState.RUNNING:
                self._print(f"{event.state}: {event.message}")
        elif isinstance(event, Log):  # as written: a whole line, its brackets not markup
            self._print(f"[{event.level}] {event.message}")
        elif isinstance(event, Finding):  # new or grown more severe: one line (updates: none)
            said = (event.kind, event.step, event.severity)
            if said not in self._said:
                self._said.add(said)
                self._print(one_line(event))
