"""Baseline vs after, per check; the patch's own ending; a status and a confidence.

Pure functions of the event: the same evidence always gives the same verdict.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg

from patchtwin.stage import now
from schemas import (
    CHECK_FAMILIES,
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
    VerdictIssued,
    VerdictStatus,
)


def classify(baseline: CheckResult, after: CheckResult) -> Classification:
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


def confidence(
    verdicts: list[CheckVerdict], *, repeats: int, stderr: bool, patch_ended_badly: bool,
    failed: bool,
) -> tuple[float, dict[str, float]]:
    """0 to 100 and its inputs (README, "Confidence"): every factor is something observed."""
    total = len(verdicts)
    with_data = sum(1 for v in verdicts if v.baseline != "error" and v.after != "error")
    flaky = sum(1 for v in verdicts if v.classification is Classification.FLAKY)
    inputs = {
        "checks": float(total),
        "data_ratio": with_data / total if total else 0.0,
        "stability": 1 - flaky / total if total else 1.0,
        "coverage": len({v.type for v in verdicts}) / len(CHECK_FAMILIES),
        "repeat_factor": 1 - 0.5 ** (repeats + 1),
        "stderr_factor": 0.9 if stderr else 1.0,
    }
    if failed and patch_ended_badly:
        score = 1.0  # the patch's own exit was observed directly
    elif failed:
        score = inputs["repeat_factor"] * inputs["stability"]
    else:
        score = (
            inputs["data_ratio"]
            * inputs["stability"]
            * (0.6 + 0.4 * inputs["coverage"])
            * inputs["repeat_factor"]
            * inputs["stderr_factor"]
        )
    return round(100 * score, 1), inputs


def judge(completed: ChecksCompleted) -> VerdictIssued:
    started = now()
    context = completed.context
    request = context.request
    baseline = context.baseline.by_name()
    after = completed.after.by_name()
    verdicts: list[CheckVerdict] = []
    issues, warnings = patch_issues(completed.outcome)
    patch_ended_badly = bool(issues)
    for check in request.checks:
        name = check.name or ""
        b, a = baseline.get(name), after.get(name)
        if b is None or a is None:
            continue
        kind = classify(b, a)
        verdicts.append(CheckVerdict(
            name=name, type=check.type, critical=check.critical, baseline=b.status.value,
            after=a.status.value, classification=kind, evidence={"message": a.message, **a.evidence},
            baseline_evidence={"message": b.message, **b.evidence},
        ))
        if kind is Classification.REGRESSION:
            target = issues if check.critical else warnings
            code = Code.CHECK_REGRESSED if check.critical else Code.NONCRITICAL_REGRESSED
            target.append(Issue(code=code, check=name, message=f"{name}: passed before the patch, "
                                f"{a.status.value} after: {a.message}"))
        elif kind is Classification.PRE_EXISTING:
            warnings.append(Issue(code=Code.CHECK_PRE_EXISTING, check=name,
                                  message=f"{name} failed before the patch too: {b.message}"))
        elif kind is Classification.FLAKY:
            warnings.append(Issue(code=Code.CHECK_FLAKY, check=name, message=f"{name} gave "
                                  f"{'/'.join(o.value for o in [*b.observations, *a.observations])}"))
        if a.status is CheckStatus.ERROR:
            warnings.append(Issue(code=Code.CHECK_ERROR, check=name, message=a.message))
    if not request.checks:
        warnings.append(Issue(code=Code.NO_CHECKS, message="no checks were requested"))
    status = VerdictStatus.FAILED if issues else VerdictStatus.PASSED
    score, inputs = confidence(
        verdicts, repeats=request.repeats, stderr=bool(completed.outcome.stderr.strip()),
        patch_ended_badly=patch_ended_badly, failed=bool(issues),
    )
    timeline = [*context.timeline, StageSpan(stage="analyze", started_at=started, finished_at=now())]
    return VerdictIssued(
        run_id=completed.run_id,
        status=status,
        confidence=score,
        summary=_summary(status, request.patch.id, request.asset.id, verdicts, issues),
        issues=issues,
        warnings=warnings,
        checks=verdicts,
        asset_id=request.asset.id,
        patch_id=request.patch.id,
        patch=completed.outcome,
        confidence_inputs=inputs,
        durations_s=durations(timeline, request.occurred_at),
        timeline=timeline,
        keep_twin=request.keep_twin,
    )


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
        durations_s=durations(failed.timeline, None),
        keep_twin=failed.keep_twin,
    )


def durations(timeline: list[StageSpan], requested_at: object) -> dict[str, float]:
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
    """Writes the verdict row in the ledger's transaction (for `runs`, `show`, `report`)."""
    if not isinstance(event, VerdictIssued):
        return None

    async def write(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO verdicts (run_id, event_id, status, confidence, summary, asset_id, patch_id, "
            "verdict) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id) DO NOTHING",
            event.run_id, event.event_id, event.status.value, event.confidence, event.summary,
            event.asset_id, event.patch_id, event.model_dump_json(),
        )

    return write
