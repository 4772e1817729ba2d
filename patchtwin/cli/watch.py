"""`patchtwin watch RUN_ID`: a run's stages as they happen, with elapsed times and a progress bar.

Why from the topics: the events on Kafka are the run's progress whoever started it (a
scanner's plain client, `submit`, another machine), so the view reads them by assignment
from the start of each topic — it joins no consumer group and changes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from patchtwin.cli.client import follow
from patchtwin.settings import Settings
from schemas import VerdictIssued
from schemas.topics import Topic

#: The stages a run passes, in order, by the event that ends each.
STAGES: tuple[tuple[Topic, str], ...] = (
    (Topic.TWIN_REQUESTED, "requested"),
    (Topic.TWIN_READY, "twin ready (baseline taken)"),
    (Topic.PATCH_APPLIED, "patch applied"),
    (Topic.CHECKS_COMPLETED, "checks completed"),
    (Topic.VERDICT_ISSUED, "verdict issued"),
)


@dataclass
class RunView:
    """What is known of the run so far: when each stage's event appeared, and how it ended."""

    run_id: str
    seen_ms: dict[Topic, int] = field(default_factory=dict)
    failure: str | None = None
    verdict: VerdictIssued | None = None

    def elapsed_s(self, topic: Topic) -> float | None:
        start = self.seen_ms.get(Topic.TWIN_REQUESTED) or min(self.seen_ms.values(), default=None)
        seen = self.seen_ms.get(topic)
        return None if seen is None or start is None else (seen - start) / 1000

    def render(self) -> Group:
        table = Table(title=f"run {self.run_id}", show_header=True, header_style="bold")
        table.add_column("stage")
        table.add_column("state")
        table.add_column("elapsed", justify="right")
        waiting_shown = False
        for topic, label in STAGES:
            elapsed = self.elapsed_s(topic)
            if elapsed is not None:
                table.add_row(label, "[green]done[/]", f"{elapsed:.2f}s")
            elif self.failure is not None and not waiting_shown and topic is not Topic.VERDICT_ISSUED:
                table.add_row(label, f"[red]failed[/]: {self.failure}", "")
                waiting_shown = True
            elif not waiting_shown:
                table.add_row(label, "[yellow]running…[/]", "")
                waiting_shown = True
            else:
                table.add_row(label, "[dim]pending[/]", "")
        done = sum(1 for topic, _ in STAGES if topic in self.seen_ms)
        progress = Progress(TextColumn("progress"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
        progress.add_task("run", total=len(STAGES), completed=done)
        return Group(table, progress)


async def watch(settings: Settings, run_id: str, console: Console, *, timeout_s: float = 900) -> VerdictIssued:
    """Shows the run live on `console` until its verdict; TimeoutError if none comes in time."""
    view = RunView(run_id)
    events = follow(settings, {run_id}, timeout_s=timeout_s, settle_s=1.0)
    with Live(view.render(), console=console, refresh_per_second=8, transient=False) as live:
        async with contextlib.aclosing(events):  # type: ignore[type-var]  # closes the reader at the verdict
            async for event in events:
                view.seen_ms.setdefault(event.topic, event.timestamp_ms)
                if event.topic is Topic.RUN_FAILED:
                    view.failure = f"{event.value.get('code')} in {event.value.get('stage')}"
                if event.topic is Topic.VERDICT_ISSUED:
                    view.verdict = VerdictIssued.model_validate(event.value)
                live.update(view.render())
    if view.verdict is not None:
        return view.verdict
    raise TimeoutError(f"no verdict within {timeout_s:g}s for {run_id}")
