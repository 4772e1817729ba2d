"""Baseline vs after, per check; the patch's own ending; a status and a confidence.

Pure functions of the event: the same evidence always gives the same verdict.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg

from patchtwin.core.stage import now
from patchtwin.core.store import save_verdict
from patchtwin.reports import render_all
from schemas import (
    CheckResult,
    ChecksCompleted,
    CheckStatus,
    CheckVerdict,
    Classification,
    Code,
    Event,
    Issue,
    PatchOutcome,
    RunFailed,
    StageSpan,
    TwinRef,
    VerdictIssued,
    VerdictStatus,
)
from services.analyzer.confidence import Basis, Evidence, compute, read_fidelity, read_samples


def classify(baseline: CheckResult, after: CheckResult) -> Classification:
    """Flaky when any round disagreed; else passed-or-not before vs after (an error is not a pass)."""
    if baseline.flaky or after.flaky:
        return Classification.FLAKY
    before_ok = baseline.status is CheckStatus.PASSED
    after_ok = after.status is CheckStatus.PASSED
    if before_ok and after_ok:
        return Classification.STABLE
    if before_ok:
        return Classification.REGRESSION
    if after_ok:
        return Classification.FIXED
    return Classification.PRE_EXISTING


def patch_issues(outcome: PatchOutcome) -> tuple[list[Issue], list[Issue]]:
    """How the patch ended, as issues (it ended badly) and warnings."""
    issues: list[Issue] = []
    warnings: list[Issue] = []
    if outcome.timed_out:
        how = "stopped from outside" if outcome.abandoned else "its processes killed"
        issues.append(Issue(code=Code.PATCH_TIMEOUT, message=f"the patch ran past its timeout "
                            f"({outcome.duration_s:.1f}s) and was killed ({how})"))
    elif outcome.oom_killed:
        issues.append(Issue(code=Code.PATCH_OOM, message=f"the patch exceeded the twin's memory limit: a process "
                            f"was OOM-killed (exit {outcome.exit_code}, signal {outcome.signal})"))
    elif outcome.signal is not None:
        issues.append(Issue(code=Code.PATCH_KILLED, message=f"the patch was killed by signal {outcome.signal}"))
    elif outcome.exit_code != 0:
        issues.append(Issue(code=Code.PATCH_FAILED, message=f"the patch ({outcome.step}) exited with "
                            f"{outcome.exit_code}: {_tail(outcome.stderr or outcome.stdout)}"))
    if outcome.stderr.strip():
        warnings.append(Issue(code=Code.PATCH_STDERR, message=_tail(outcome.stderr)))
    if outcome.truncated:
        warnings.append(Issue(code=Code.OUTPUT_TRUNCATED, message=f"output capped: "
                              f"{outcome.stdout_bytes} bytes on stdout, {outcome.stderr_bytes} on stderr"))
    return issues, warnings


def judge(completed: ChecksCompleted) -> VerdictIssued:
    started = now()
    context = completed.context
    request = context.request
    baseline = context.baseline.by_name()
    after = completed.after.by_name()
    verdicts: list[CheckVerdict] = []
    issues, warnings = patch_issues(completed.outcome)
    patch_ended_badly = bool(issues)
    samples: dict[str, int] = {}
    for check in request.checks:
        name = check.name or ""
        b = baseline.get(name) or _missing(name, check.type, "before the patch")
        a = after.get(name) or _missing(name, check.type, "after the patch")
        kind = classify(b, a)
        verdicts.append(CheckVerdict(
            name=name, type=check.type, critical=check.critical, baseline=b.status.value,
            after=a.status.value, classification=kind, evidence={"message": a.message, **a.evidence},
            baseline_evidence={"message": b.message, **b.evidence},
            attempts=a.attempts, time_to_pass_s=a.time_to_pass_s, observations=[o.value for o in a.observations],
        ))
        if check.type == "performance":
            counts = [n for n in (read_samples(b.evidence), read_samples(a.evidence)) if n is not None]
            samples[name] = min(counts) if counts else 0
        if kind is Classification.REGRESSION:
            message = f"{name}: passed before the patch, {a.status.value} after: {a.message}"
            if check.type == "performance":
                issues.append(Issue(code=Code.PERFORMANCE_LIMIT_EXCEEDED, check=name, message=message))
            elif check.critical:
                issues.append(Issue(code=Code.CHECK_REGRESSED, check=name, message=message))
            else:
                warnings.append(Issue(code=Code.NONCRITICAL_REGRESSED, check=name, message=message))
        elif kind is Classification.PRE_EXISTING:
            warnings.append(Issue(code=Code.CHECK_PRE_EXISTING, check=name,
                                  message=f"{name} failed before the patch too: {b.message}"))
        elif kind is Classification.FLAKY:
            warnings.append(Issue(code=Code.CHECK_FLAKY, check=name, message=f"{name} gave "
                                  f"{'/'.join(o.value for o in b.observations or [b.status])} before the "
                                  f"patch, {'/'.join(o.value for o in a.observations or [a.status])} after"))
        for when, result in (("before", b), ("after", a)):
            if result.status is CheckStatus.ERROR:
                warnings.append(Issue(code=Code.CHECK_ERROR, check=name,
                                      message=f"{name} could not be evaluated {when} the patch: {result.message}"))
    if not request.checks:
        warnings.append(Issue(code=Code.NO_CHECKS, message="no checks were requested"))
    warnings += twin_warnings(context.twin)
    status = VerdictStatus.FAILED if issues else VerdictStatus.PASSED
    basis = (Basis.PATCH_ENDED_BADLY if patch_ended_badly else Basis.REGRESSION if issues else Basis.PASSED)
    fidelity, fidelity_note = read_fidelity(context.fidelity)
    scored = compute(Evidence(
        checks=verdicts, basis=basis, repeats=request.repeats, stderr=bool(completed.outcome.stderr.strip()),
        fidelity=fidelity, fidelity_note=fidelity_note, samples=samples,
    ))
    timeline = [*context.timeline, StageSpan(stage="analyze", started_at=started, finished_at=now())]
    return VerdictIssued(
        run_id=completed.run_id,
        status=status,
        confidence=scored.score,
        summary=_summary(status, request.patch.id, request.asset.id, verdicts, issues),
        issues=issues,
        warnings=warnings,
        checks=verdicts,
        asset_id=request.asset.id,
        patch_id=request.patch.id,
        patch=completed.outcome,
        confidence_inputs=scored.inputs,
        confidence_factors=scored.factors,
        confidence_formula=scored.formula,
        state_diff_summary=completed.outcome.state_diff.summary() if completed.outcome.state_diff else "",
        durations_s=durations(timeline),
        timeline=timeline,
        keep_twin=request.keep_twin,
        isolation=context.twin.isolation,
    )


def twin_warnings(twin: TwinRef) -> list[Issue]:
    """What the twin itself makes less certain: a clone whose Secrets are placeholders."""
    if twin.clone is None or not twin.clone.placeholder_secrets:
        return []
    names = ", ".join(twin.clone.placeholder_secrets)
    return [Issue(code=Code.SECRETS_PLACEHOLDERS, message=f"cloned from namespace "
                  f"{twin.clone.source_namespace}: Secrets {names} hold placeholder values, not the real ones")]


def _missing(name: str, type_: str, when: str) -> CheckResult:
    """A requested check the suite returned nothing for: no data, never silently dropped."""
    return CheckResult(name=name, type=type_, status=CheckStatus.ERROR, message=f"no result {when}")


def judge_failure(failed: RunFailed) -> VerdictIssued:
    """The test itself could not be carried out: an `error` verdict naming the cause."""
    message = failed.message
    errors = failed.details.get("errors")
    if errors:
        message += " | " + json.dumps(errors)[:4000]
    return VerdictIssued(
        run_id=failed.run_id,
        status=VerdictStatus.ERROR,
        confidence=100.0,
        summary=f"error in {failed.stage}: {failed.code.value}: {failed.message[:300]}",
        issues=[Issue(code=failed.code, message=message)],
        asset_id=failed.asset_id,
        patch_id=failed.patch_id,
        confidence_inputs={"test_carried_out": 0.0},
        confidence_formula="error: 100 (the test could not be carried out; observed directly) = 100.0",
        durations_s=durations(failed.timeline),
        keep_twin=failed.keep_twin,
    )


def durations(timeline: list[StageSpan]) -> dict[str, float]:
    spans = {span.stage: round(span.seconds, 3) for span in timeline}
    if timeline:
        spans["total"] = round((timeline[-1].finished_at - timeline[0].started_at).total_seconds(), 3)
    return spans


def _summary(status: VerdictStatus, patch_id: str, asset_id: str, verdicts: list[CheckVerdict],
             issues: list[Issue]) -> str:
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.classification.value] = counts.get(v.classification.value, 0) + 1
    tally = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no checks"
    head = f"patch {patch_id} on {asset_id}: {status.value}"
    if issues:
        return f"{head} — {issues[0].message[:160]} ({tally})"
    return f"{head} ({tally})"


def _tail(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def store_verdict(event: Event) -> Callable[[asyncpg.Connection], Awaitable[None]] | None:
    """Writes the verdict row and its reports in the ledger's transaction (for `runs`, `show`, `report`)."""
    if not isinstance(event, VerdictIssued):
        return None
    reports = render_all(event)

    async def write(conn: asyncpg.Connection) -> None:
        await save_verdict(conn, event, reports)

    return write
