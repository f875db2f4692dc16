"""The CLI's live line: step, reward and KL, from the loop's events (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.doctor import one_line
from core.events import Event, Finding, Log, Metrics, RunState, Status

# What the live line shows, when the step logged it: (metric, label, format).
STATS = (
    ("reward/mean", "reward", "+.3f"),
    ("objective/kl", "kl", ".3f"),
    ("loss/total", "loss", ".3f"),
)


class ConsoleProgress:
    def __init__(self, total_steps: int) -> None:
        self.console = Console(stderr=True)
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

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self.progress.stop()

    def _start(self) -> None:
        """The line appears with the run's first word: a refused resume shows none."""
        if not self._started:
            self._started = True
            self.progress.start()

    def say(self, message: str) -> None:
        self._start()
        if message.endswith("%"):  # a conversion's percentage: the live line, not a new line
            self.progress.update(self.task, description=message)
            return
        self.console.print(message)

    def on_event(self, event: Event) -> None:
        self._start()
        if isinstance(event, Metrics):
            v = event.values
            if "time/update_s" not in v:  # an evaluation: one line of its own
                shown = {k.removeprefix("eval/"): x for k, x in v.items() if k.startswith("eval/")}
                text = "  ".join(f"{k} {x:.3g}" for k, x in sorted(shown.items()))
                self.console.print(f"eval at step {event.step}: {text}")
                return
            parts = [f"{label} {v[key]:{fmt}}" for key, label, fmt in STATS if key in v]
            parts.append(f"{v.get('time/rollout_s', 0) + v['time/update_s']:.1f}s/step")
            self.progress.update(self.task, completed=event.step, stats="  ".join(parts))
        elif isinstance(event, Status):
            self.progress.update(
                self.task,
                description=event.state,
                completed=event.step,
                total=event.total_steps or None,
            )
            if event.message and event.state != RunState.RUNNING:
                self.console.print(f"{event.state}: {event.message}")
        elif isinstance(event, Log):
            self.console.print(f"[{event.level}] {event.message}")
        elif isinstance(event, Finding):  # new or grown more severe: one line (updates: none)
            said = (event.kind, event.step, event.severity)
            if said not in self._said:
                self._said.add(said)
                self.console.print(one_line(event), markup=False, highlight=False)
