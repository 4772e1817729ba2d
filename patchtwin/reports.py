"""A verdict rendered for the tools and people that act on it: JSON (machines), JUnit XML (CI),
Markdown (a ticket body). The analyzer stores all three with the verdict; they are pure functions
of it, so a stored report can always be rebuilt. The terminal views are `patchtwin.cli.views`."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from schemas import CheckVerdict, Classification, Code, Issue, VerdictIssued, VerdictStatus
from schemas.state import PackageChange, PackageVersion, ServiceChange, StateDiff, ValueChange

FORMATS: tuple[str, ...] = ("json", "junit", "markdown")

# Terminal colour codes, and characters XML 1.0 cannot carry at all (patch output may hold any byte).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_EVIDENCE_LIMIT = 4000


def render(verdict: VerdictIssued, fmt: str) -> str:
    renderers: dict[str, Callable[[VerdictIssued], str]] = {
        "json": render_json, "junit": render_junit, "markdown": render_markdown,
    }
    return renderers[fmt](verdict)


def render_all(verdict: VerdictIssued) -> dict[str, str]:
    return {fmt: render(verdict, fmt) for fmt in FORMATS}


def render_json(verdict: VerdictIssued) -> str:
    """The verdict event itself: the contract's fields and everything beyond them."""
    return verdict.model_dump_json(indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# JUnit XML (the schema Jenkins' xunit plugin validates against: tests/data/junit-10.xsd)


def clean(text: Any) -> str:
    """Text as a report can carry it: colour codes dropped, other control characters shown as �."""
    return _NOT_XML.sub("\ufffd", _ANSI.sub("", str(text)))


_xml = clean


def _seconds(value: float | None) -> str:
    return f"{max(0.0, value or 0.0):.3f}"


def _evidence_text(check: CheckVerdict) -> str:
    body = json.dumps({"before": check.baseline_evidence, "after": check.evidence}, indent=2,
                      sort_keys=True, default=str)
    if len(body) > _EVIDENCE_LIMIT:
        body = body[:_EVIDENCE_LIMIT] + "\n… (cut; the whole evidence is in the JSON report)"
    return _xml(f"{check.name}: {check.baseline} before the patch, {check.after} after "
                f"({check.classification.value})\n{body}")


def _issue_of(check: CheckVerdict, issues: list[Issue]) -> Issue | None:
    return next((i for i in issues if i.check == check.name), None)


def render_junit(verdict: VerdictIssued) -> str:
    """One testsuite per run: a testcase for the patch's own ending and one per check.

    A failing check is a `failure` (type = its code, body = its evidence); a pre-existing failure
    is `skipped` (it never fails the patch); a flaky check carries a `flakyFailure`; an `error`
    verdict is one testcase with an `error`."""
    asset = verdict.asset_id or "asset"
    suite_name = f"patchtwin {verdict.patch_id or 'patch'} on {asset}"
    cases: list[ET.Element] = []
    counts = {"failures": 0, "errors": 0, "skipped": 0}

    def case(name: str, classname: str, time_s: float | None = None) -> ET.Element:
        element = ET.Element("testcase", name=_xml(name), classname=_xml(classname), time=_seconds(time_s))
        cases.append(element)
        return element

    def mark(parent: ET.Element, tag: str, code: str, message: str, body: str = "") -> None:
        element = ET.SubElement(parent, tag, type=code, message=_xml(message[:1000]))
        if body:
            element.text = body
        if tag == "failure":
            counts["failures"] += 1
        elif tag == "error":
            counts["errors"] += 1
        elif tag == "skipped":
            counts["skipped"] += 1

    if verdict.status is VerdictStatus.ERROR:
        run = case(f"run {verdict.run_id} could be carried out", f"patchtwin.{asset}.run")
        for issue in verdict.issues:
            mark(run, "error", issue.code.value, issue.message, _xml(issue.message))
    if verdict.patch is not None:
        outcome = verdict.patch
        patch = case(f"patch {verdict.patch_id} ends cleanly", f"patchtwin.{asset}.patch", outcome.duration_s)
        for issue in verdict.issues:
            if issue.check is None:
                mark(patch, "failure", issue.code.value, issue.message, _xml(issue.message))
        if outcome.stdout:
            ET.SubElement(patch, "system-out").text = _xml(outcome.stdout[-_EVIDENCE_LIMIT:])
        if outcome.stderr:
            ET.SubElement(patch, "system-err").text = _xml(outcome.stderr[-_EVIDENCE_LIMIT:])
    for check in verdict.checks:
        element = case(check.name, f"patchtwin.{asset}.{check.type}")
        found = _issue_of(check, verdict.issues)
        warning = _issue_of(check, verdict.warnings)
        if found is not None:
            mark(element, "failure", found.code.value, found.message, _evidence_text(check))
        elif check.classification is Classification.PRE_EXISTING:
            mark(element, "skipped", Code.CHECK_PRE_EXISTING.value,
                 f"failed before the patch too: not the patch's doing ({check.baseline} → {check.after})")
        elif check.classification is Classification.FLAKY:
            flaky = ET.SubElement(element, "flakyFailure", type=Code.CHECK_FLAKY.value,
                                  message=_xml(warning.message if warning else "results disagreed across repeats"))
            flaky.text = _evidence_text(check)
        else:
            note = f"WARNING {warning.code.value}: {warning.message}\n" if warning else ""
            ET.SubElement(element, "system-out").text = note + _evidence_text(check)

    total_s = verdict.durations_s.get("total")
    suites = ET.Element("testsuites", name="patchtwin", tests=str(len(cases)),
                        failures=str(counts["failures"]), errors=str(counts["errors"]), time=_seconds(total_s))
    suite = ET.SubElement(
        suites, "testsuite", name=_xml(suite_name), tests=str(len(cases)), failures=str(counts["failures"]),
        errors=str(counts["errors"]), skipped=str(counts["skipped"]), time=_seconds(total_s),
        timestamp=verdict.occurred_at.isoformat(), id=_xml(verdict.run_id),
    )
    properties = ET.SubElement(suite, "properties")
    props: dict[str, Any] = {
        "run_id": verdict.run_id, "status": verdict.status.value, "confidence": f"{verdict.confidence:g}",
        "confidence_formula": verdict.confidence_formula, "summary": verdict.summary,
        "asset_id": verdict.asset_id or "", "patch_id": verdict.patch_id or "",
        "state_diff": verdict.state_diff_summary,
        **{f"confidence.{f.name}": f"{f.value:g} ({f.observed})" for f in verdict.confidence_factors},
        **{f"duration_s.{stage}": f"{seconds:g}" for stage, seconds in verdict.durations_s.items()},
    }
    for name, value in props.items():
        ET.SubElement(properties, "property", name=name, value=_xml(value))
    suite.extend(cases)
    if verdict.warnings:
        ET.SubElement(suite, "system-out").text = _xml(
            "\n".join(f"WARNING {w.code.value}: {w.message}" for w in verdict.warnings))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------------------------
# Markdown: a ticket body a person reads top-down


def _cell(text: Any, limit: int = 200) -> str:
    """One line of text, safe in a table cell or a list item (no HTML, no column breaks)."""
    value = " ".join(clean(text).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return html.escape(value, quote=False).replace("|", "\\|") or " "


def _fence(text: str, limit: int = 3000) -> str:
    text = clean(text)
    text = text if len(text) <= limit else "…" + text[-limit:]
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text.rstrip()}\n{fence}"


_HEADLINE = {
    VerdictStatus.PASSED: "✅ PASSED",
    VerdictStatus.FAILED: "❌ FAILED",
    VerdictStatus.ERROR: "⚠️ ERROR (the test could not be carried out)",
}


def _diff_lines(diff: StateDiff, limit: int = 25) -> list[str]:
    """The state diff, one change per line, at most `limit` per kind."""
    lines: list[str] = []
    for name in type(diff).model_fields:
        items = getattr(diff, name)
        label = name.replace("_", " ")
        for item in items[:limit]:
            if isinstance(item, PackageChange):
                text = f"{item.name} {item.before} → {item.after}"
            elif isinstance(item, ServiceChange | ValueChange):
                text = f"{item.name}: {item.before} → {item.after}"
            elif isinstance(item, PackageVersion):
                text = f"{item.name} {item.version}"
            else:
                text = str(item)
            lines.append(f"{label}: `{text}`")
        if len(items) > limit:
            lines.append(f"{label}: … and {len(items) - limit} more")
    return lines


def _readiness(check: CheckVerdict) -> str:
    """When the check first passed after the patch, and on which attempt (retries show here)."""
    if check.time_to_pass_s is None:
        return "never" if check.after != "passed" or check.attempts > 1 else ""
    attempt = f", attempt {check.attempts}" if check.attempts > 1 else ""
    return f"{check.time_to_pass_s:.1f} s{attempt}"


def render_markdown(verdict: VerdictIssued) -> str:
    lines = [
        f"## patchtwin: {_HEADLINE[verdict.status]} — patch `{verdict.patch_id}` on `{verdict.asset_id}`",
        "",
        f"**Run** `{verdict.run_id}` · **Status** {verdict.status.value} · "
        f"**Confidence** {verdict.confidence:g} / 100 · **Issued** {verdict.occurred_at:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"> {_cell(verdict.summary, 1000)}",
        "",
    ]
    if verdict.issues:
        lines += ["### Why it failed" if verdict.status is VerdictStatus.FAILED else "### What went wrong", ""]
        lines += [f"- `{i.code.value}`{f' **{_cell(i.check)}**' if i.check else ''}: {_cell(i.message, 600)}"
                  for i in verdict.issues]
        lines.append("")
    if verdict.warnings:
        lines += ["### Warnings (do not fail the patch)", ""]
        lines += [f"- `{w.code.value}`{f' **{_cell(w.check)}**' if w.check else ''}: {_cell(w.message, 600)}"
                  for w in verdict.warnings]
        lines.append("")
    if verdict.checks:
        lines += ["### Checks, before and after the patch", "",
                  "| check | type | critical | before | after | classification | ready after | observed after |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in verdict.checks:
            lines.append(f"| {_cell(c.name)} | {c.type} | {'yes' if c.critical else 'no'} | {c.baseline} | "
                         f"{c.after} | **{c.classification.value}** | {_readiness(c)} | "
                         f"{_cell(c.evidence.get('message', ''), 120)} |")
        lines.append("")
        changed = [c for c in verdict.checks if c.classification is not Classification.STABLE]
        for c in changed:
            body = json.dumps({"before": c.baseline_evidence, "after": c.evidence}, indent=2, sort_keys=True,
                              default=str)
            lines += [f"<details><summary>Evidence: {_cell(c.name)} ({c.classification.value})</summary>", "",
                      _fence(body), "", "</details>", ""]
    if verdict.patch is not None:
        p = verdict.patch
        ending = ("timed out" if p.timed_out else "killed for memory" if p.oom_killed
                  else f"exit code {p.exit_code}")
        lines += ["### The patch", "",
                  f"{ending} after {p.duration_s:.1f} s"
                  + (" · output truncated" if p.truncated else ""), ""]
        if p.stderr.strip():
            lines += ["stderr (tail):", "", _fence(p.stderr), ""]
        if p.state_diff is not None:
            lines += ["### What the patch changed in the twin", "", _cell(verdict.state_diff_summary
                                                                        or p.state_diff.summary(), 600), ""]
            lines += [f"- {_cell(line, 300)}" for line in _diff_lines(p.state_diff)]
            lines.append("")
    if verdict.confidence_factors or verdict.confidence_formula:
        lines += ["### Confidence", "", f"`{verdict.confidence_formula}`", ""]
        if verdict.confidence_factors:
            lines += ["| factor | value | used | from |", "|---|---|---|---|"]
            lines += [f"| {f.name} | {f.value:.3f} | {'yes' if f.applied else 'no'} | {_cell(f.observed)} |"
                      for f in verdict.confidence_factors]
            lines.append("")
    if verdict.durations_s:
        lines += ["### Time per stage", "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {stage} | {seconds:.2f} |" for stage, seconds in verdict.durations_s.items()]
        lines.append("")
    lines.append(f"<sub>patchtwin verdict `{verdict.event_id}`; full evidence: "
                 f"`patchtwin report {verdict.run_id} --format json`</sub>")
    return "\n".join(lines) + "\n"
