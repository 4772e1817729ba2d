"""The verdict and the runs in a terminal (rich): what `patchtwin submit --wait`, `watch`,
`runs`, `show` and `demo` print. The reports the analyzer stores are `patchtwin.reports`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from patchtwin.core.store import RunRow
from patchtwin.reports import clean
from schemas import VerdictIssued

STAGES: tuple[str, ...] = ("provision", "patch", "probe", "analyze")
_COLOUR = {"passed": "green", "failed": "red", "error": "yellow", "running": "cyan"}


def runs_table(rows: list[RunRow]) -> Table:
    table = Table(title="patchtwin runs, newest first")
    table.add_column("run", no_wrap=True)
    for header in ("status", "confidence", "asset", "patch", *(f"{s} s" for s in STAGES), "total s"):
        table.add_column(header)
    table.add_column("started (UTC)", no_wrap=True)
    for row in rows:
        colour = _COLOUR.get(row.status, "white")
        when = row.started_at or row.issued_at
        table.add_row(
            row.run_id, f"[{colour}]{row.status}[/]",
            "" if row.confidence is None else f"{row.confidence:g}", row.asset_id or "", row.patch_id or "",
            *(_secs(row.durations_s.get(s)) for s in STAGES), _secs(row.durations_s.get("total")),
            "" if when is None else f"{when:%Y-%m-%d %H:%M:%S}",
        )
    return table


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def show_verdict(console: Console, verdict: VerdictIssued) -> None:
    """One run in full: headline, issues and warnings, checks, confidence factors, time per stage."""
    colour = _COLOUR[verdict.status.value]
    console.rule(f"[{colour}]{verdict.run_id}: {verdict.status.value.upper()}[/] (confidence {verdict.confidence:g})")
    console.print(clean(verdict.summary), markup=False)
    if verdict.state_diff_summary:
        console.print(f"[bold]changed in the twin[/]: {clean(verdict.state_diff_summary)}", highlight=False)
    for issue in verdict.issues:
        console.print(f"[{colour}]issue[/] [bold]{issue.code.value}[/]: ", end="")
        console.print(clean(issue.message[:400]), markup=False)
    for warning in verdict.warnings:
        console.print(f"[yellow]warning[/] [bold]{warning.code.value}[/]: ", end="")
        console.print(clean(warning.message[:400]), markup=False)
    if verdict.checks:
        checks = Table("check", "type", "critical", "before", "after", "classification", "observed after",
                       title="checks")
        for c in verdict.checks:
            kind = c.classification.value
            style = {"regression": "red", "fixed": "green", "flaky": "yellow", "pre_existing": "yellow"}.get(kind)
            checks.add_row(Text(c.name), c.type, "yes" if c.critical else "no", c.baseline, c.after,
                           Text(kind, style=style or ""), Text(clean(c.evidence.get("message", ""))[:80]))
        console.print(checks)
    if verdict.confidence_factors:
        factors = Table("factor", "value", "used", "from", title="confidence")
        for f in verdict.confidence_factors:
            factors.add_row(f.name, f"{f.value:.3f}", "yes" if f.applied else "no", Text(f.observed))
        console.print(factors)
        console.print(Text(verdict.confidence_formula))
    if verdict.durations_s:
        times = Table("stage", "seconds", title="time per stage")
        for stage, seconds in verdict.durations_s.items():
            times.add_row(stage, f"{seconds:.2f}")
        console.print(times)


def print_verdict(console: Console, verdict: VerdictIssued) -> None:
    """A verdict as `submit --wait`, `watch`, `rerun --wait` and the demo print it: the checks in brief."""
    colour = {"passed": "green", "failed": "red", "error": "yellow"}[verdict.status.value]
    console.rule(f"[{colour}]{verdict.run_id}: {verdict.status.value.upper()}[/] "
                 f"(confidence {verdict.confidence:g})")
    console.print(verdict.summary)
    table = Table("check", "baseline", "after", "classification", "evidence")
    for check in verdict.checks:
        table.add_row(check.name, check.baseline, check.after, check.classification.value,
                      str(check.evidence.get("message", ""))[:60])
    if verdict.checks:
        console.print(table)
    for issue in verdict.issues:
        console.print(f"[{colour}]issue[/] {issue.code.value}: {issue.message[:200]}")
    for warning in verdict.warnings:
        console.print(f"[yellow]warning[/] {warning.code.value}: {warning.message[:200]}")
