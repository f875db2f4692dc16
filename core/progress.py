"""The CLI's live line: step, reward and KL, from the loop's events (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.events import Event, Log, Metrics, Status


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
        self.task = self.progress.add_task("loading", total=total_steps, stats="")

    def __enter__(self) -> ConsoleProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def say(self, message: str) -> None:
        self.console.print(message)

    def on_event(self, event: Event) -> None:
        if isinstance(event, Metrics):
            v = event.values
            stats = (
                f"reward {v.get('reward/mean', float('nan')):+.3f}  "
                f"kl {v.get('objective/kl', float('nan')):.3f}  "
                f"{v.get('time/rollout_s', 0) + v.get('time/update_s', 0):.1f}s/step"
            )
            self.progress.update(self.task, completed=event.step, stats=stats)
        elif isinstance(event, Status):
            self.progress.update(
                self.task,
                description=event.state,
                completed=event.step,
                total=event.total_steps or None,
            )
            if event.message and event.state not in ("running",):
                self.console.print(f"{event.state}: {event.message}")
        elif isinstance(event, Log):
            self.console.print(f"[{event.level}] {event.message}")
