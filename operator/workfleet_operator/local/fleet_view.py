"""What `workfleet up` shows while it runs.

On a terminal, a live view redrawn every poll: the backlog (ready and unacked), the workers
(desired, running, busy), the message rates, the dead-letter queue's depth and the last scaling
decisions with their reasons. Anywhere else (a pipe, a log file, CI), plain lines: one per
decision that changes the worker count, and one per note.
"""

import sys
import time
from collections import deque
from dataclasses import dataclass, field

from workfleet_operator.local.autoscaler import Step

DECISIONS_SHOWN = 6


@dataclass
class FleetRecord:
    """What the run has seen, for the views and the demo's summary."""

    started: float = field(default_factory=time.monotonic)
    peak_workers: int = 0
    killed: int = 0  # by --chaos
    last: Step | None = None
    stats_error_shown: bool = False

    def add(self, step: Step) -> None:
        self.last = step
        self.peak_workers = max(self.peak_workers, step.decision.desired)

    def elapsed(self, at: float | None = None) -> str:
        return f"{(at if at is not None else time.monotonic()) - self.started:7.1f}s"


def decision_line(record: FleetRecord, step: Step) -> str:
    return (f"{record.elapsed(step.at)}  workers {step.previous} -> {step.decision.desired}  "
            f"{step.decision.reason.value}: {step.decision.message}")


class PlainView:
    def __init__(self, record: FleetRecord):
        self.record = record

    def __enter__(self) -> "PlainView":
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def step(self, step: Step) -> None:
        self.record.add(step)
        if step.changed:
            self.say(decision_line(self.record, step))
        if step.error is not None and not self.record.stats_error_shown:
            self.say(f"{self.record.elapsed(step.at)}  queue stats unreadable: {step.error}")
        self.record.stats_error_shown = step.error is not None

    def say(self, text: str) -> None:
        print(text, flush=True)


class LiveView(PlainView):
    def __init__(self, record: FleetRecord, title: str):
        from rich.console import Console  # only a terminal needs it
        from rich.live import Live

        super().__init__(record)
        self.title = title
        self._decisions: deque[str] = deque(maxlen=DECISIONS_SHOWN)
        self._notes: deque[str] = deque(maxlen=3)
        self._console = Console()
        self._live = Live(self._render(), console=self._console, refresh_per_second=4)

    def __enter__(self) -> "LiveView":
        self._live.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._live.update(self._render())
        self._live.stop()

    def step(self, step: Step) -> None:
        self.record.add(step)
        if step.changed:
            self._decisions.append(decision_line(self.record, step))
        self._live.update(self._render())

    def say(self, text: str) -> None:
        self._notes.append(text)
        self._live.update(self._render())

    def _render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        step = self.record.last
        numbers = Table.grid(padding=(0, 2))
        for _ in range(4):
            numbers.add_column()
        if step is None:
            numbers.add_row("starting", "", "", "")
        else:
            stats, rates = step.stats, step.rates
            numbers.add_row("backlog", f"ready {stats.ready}" if stats else "ready ?",
                            f"unacked {stats.unacked}" if stats else "unacked ?",
                            f"dead-lettered {step.dead_letters if step.dead_letters is not None else '?'}")
            numbers.add_row("workers", f"desired {step.decision.desired}", f"running {step.running}", f"busy {step.busy}")
            numbers.add_row("rates /s", *(f"{name} {getattr(rates, name):.1f}" if rates else f"{name} ?"
                                          for name in ("publish", "ack", "redeliver")))
            if step.error is not None:
                numbers.add_row("stats", str(step.error), "", "")
        decisions = "\n".join(self._decisions) or "no scaling decision yet"
        parts = [numbers, Panel(decisions, title="last decisions", title_align="left")]
        if self._notes:
            parts.append("\n".join(self._notes))
        return Panel(Group(*parts), title=f"{self.title}   {self.record.elapsed().strip()}", title_align="left")


def choose_view(record: FleetRecord, title: str) -> PlainView:
    return LiveView(record, title) if sys.stdout.isatty() else PlainView(record)
