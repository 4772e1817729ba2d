"""The analyzer's judgement: per-check classification and the status rules of the contract."""

from __future__ import annotations

from typing import Any

from schemas import (
    CheckResult,
    ChecksCompleted,
    CheckStatus,
    Classification,
    Code,
    PatchOutcome,
    RunContext,
    RunFailed,
    TwinRef,
    TwinRequested,
    VerdictStatus,
)
from schemas.checks import SuiteResult
from schemas.state import Fidelity, Mismatch, PackageChange, StateDiff
from services.analyzer.logic import classify, judge, judge_failure

P, F, E = CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.ERROR


def result(name: str, *observations: CheckStatus, type_: str = "command", **evidence: Any) -> CheckResult:
    return CheckResult(name=name, type=type_, status=observations[-1], message=f"{name} was {observations[-1]}",
                       observations=list(observations), evidence=evidence)


def completed(
    checks: list[tuple[str, bool, list[CheckStatus], list[CheckStatus]]],
    *,
    outcome: PatchOutcome | None = None,
    fidelity: Fidelity | None = None,
) -> ChecksCompleted:
    """A run whose checks (name, critical, baseline rounds, after rounds) gave those results."""
    request = TwinRequested.model_validate({
        "run_id": "unit-1",
        "asset": {"id": "web-01", "platform": {"os": "debian", "version": "12"}},
        "patch": {"id": "P-1", "script": "true"},
        "checks": [{"type": "command", "run": "true", "name": name, "critical": critical}
                   for name, critical, _, _ in checks],
    })
    context = RunContext(
        request=request, twin=TwinRef(id="c1", name="twin", image="img"),
        baseline=SuiteResult(results=[result(n, *before) for n, _, before, _ in checks]), fidelity=fidelity,
    )
    return ChecksCompleted(
        run_id="unit-1", context=context,
        outcome=outcome or PatchOutcome(exit_code=0, duration_s=0.5),
        after=SuiteResult(results=[result(n, *after) for n, _, _, after in checks]),
    )


def test_classification_compares_before_and_after_and_any_disagreement_is_flaky() -> None:
    cases = {
        (P, P): Classification.STABLE, (P, F): Classification.REGRESSION, (F, P): Classification.FIXED,
        (F, F): Classification.PRE_EXISTING, (P, E): Classification.REGRESSION,
        (E, E): Classification.PRE_EXISTING,
    }
    for (before, after), expected in cases.items():
        assert classify(result("c", before), result("c", after)) is expected, (before, after)
    assert classify(result("c", P, F), result("c", P, P)) is Classification.FLAKY
    assert classify(result("c", P, P), result("c", F, P)) is Classification.FLAKY


def test_a_pre_existing_failure_passes_with_a_warning() -> None:
    verdict = judge(completed([("web", True, [P, P], [P, P]), ("broken", True, [F, F], [F, F])]))

    assert verdict.status is VerdictStatus.PASSED
    assert verdict.issues == []
    assert [(w.code, w.check) for w in verdict.warnings] == [(Code.CHECK_PRE_EXISTING, "broken")]


def test_a_check_the_patch_fixes_is_fixed_and_passes() -> None:
    verdict = judge(completed([("cve", True, [F, F], [P, P])]))

    assert verdict.status is VerdictStatus.PASSED
    assert [c.classification for c in verdict.checks] == [Classification.FIXED]


def test_a_critical_regression_fails_naming_the_check() -> None:
    verdict = judge(completed([("web", True, [P, P], [F, F]), ("ok", True, [P, P], [P, P])]))

    assert verdict.status is VerdictStatus.FAILED
    assert [(i.code, i.check) for i in verdict.issues] == [(Code.CHECK_REGRESSED, "web")]
    assert "web" in verdict.summary


def test_a_non_critical_regression_passes_with_a_warning() -> None:
    verdict = judge(completed([("nice-to-have", False, [P, P], [F, F])]))

    assert verdict.status is VerdictStatus.PASSED
    assert [(w.code, w.check) for w in verdict.warnings] == [(Code.NONCRITICAL_REGRESSED, "nice-to-have")]


def test_a_patch_that_ended_badly_fails_whatever_the_checks_say() -> None:
    endings = {
        Code.PATCH_FAILED: PatchOutcome(exit_code=3, duration_s=1),
        Code.PATCH_TIMEOUT: PatchOutcome(exit_code=137, duration_s=5, timed_out=True),
        Code.PATCH_OOM: PatchOutcome(exit_code=137, duration_s=1, oom_killed=True),
        Code.PATCH_KILLED: PatchOutcome(exit_code=None, signal=15, duration_s=1),  # the executor reports signals
    }
    for code, outcome in endings.items():
        verdict = judge(completed([("web", True, [P, P], [P, P])], outcome=outcome))
        assert verdict.status is VerdictStatus.FAILED, code
        assert [i.code for i in verdict.issues] == [code]
        assert verdict.confidence_formula.startswith("patch_ended_badly:")


def test_a_check_missing_from_the_results_is_an_error_not_dropped() -> None:
    event = completed([("web", True, [P, P], [P, P])])
    event.after.results.clear()

    verdict = judge(event)

    [check] = verdict.checks
    assert (check.baseline, check.after, check.classification) == ("passed", "error", Classification.REGRESSION)
    assert Code.CHECK_ERROR in [w.code for w in verdict.warnings]


def test_a_flaky_check_is_a_warning_that_shows_every_round() -> None:
    verdict = judge(completed([("wobbly", True, [P, F], [P, P])]))

    assert verdict.status is VerdictStatus.PASSED
    [warning] = verdict.warnings
    assert warning.code is Code.CHECK_FLAKY
    assert "passed/failed before" in warning.message


def test_the_verdict_emits_every_confidence_factor_and_the_sum_it_did() -> None:
    fidelity = Fidelity(score=50, declared=2, matched=1,
                        mismatches=[Mismatch(kind="package", name="openssl", expected="3.0.1", actual="3.0.2")])

    verdict = judge(completed([("web", True, [P, P], [P, P])], fidelity=fidelity))

    factors = {f.name: f for f in verdict.confidence_factors}
    assert set(factors) == {"data_share", "stability", "fidelity", "coverage_factor", "repeat_factor",
                            "sample_factor", "stderr_factor"}
    assert factors["fidelity"].value == 0.5
    assert "package openssl" in factors["fidelity"].observed
    product = 100.0
    for factor in verdict.confidence_factors:
        product *= factor.value if factor.applied else 1
    assert verdict.confidence == round(product, 1)
    assert verdict.confidence_formula.endswith(f"= {verdict.confidence}")


def test_a_run_that_could_not_be_carried_out_is_an_error_verdict() -> None:
    verdict = judge_failure(RunFailed(run_id="unit-2", stage="provisioner", code=Code.IMAGE_UNAVAILABLE,
                                      message="no image"))

    assert verdict.status is VerdictStatus.ERROR
    assert [i.code for i in verdict.issues] == [Code.IMAGE_UNAVAILABLE]


def test_the_verdict_carries_a_summary_of_what_the_patch_changed() -> None:
    diff = StateDiff(packages_changed=[PackageChange(name="openssl", before="3.0.11", after="3.0.13")],
                     files_changed=["/etc/nginx/nginx.conf"])

    verdict = judge(completed([("web", True, [P, P], [P, P])],
                              outcome=PatchOutcome(exit_code=0, duration_s=1, state_diff=diff)))

    assert verdict.state_diff_summary == "1 package changed, 1 file changed"
    assert verdict.patch is not None and verdict.patch.state_diff == diff


def test_each_check_of_the_verdict_says_how_it_got_ready_after_the_patch() -> None:
    """Per-check readiness is evidence too: a check that passed on its third attempt, 3 s into
    the probe, says so in the verdict, with the status of each repeat."""
    event = completed([("slow", True, [P, P], [P, P]), ("steady", True, [P, P], [P, P])])
    slow = event.after.results[0]
    slow.attempts, slow.time_to_pass_s = 3, 3.1

    checks = {c.name: c for c in judge(event).checks}

    assert (checks["slow"].attempts, checks["slow"].time_to_pass_s, checks["slow"].observations) == (
        3, 3.1, ["passed", "passed"])
    assert (checks["steady"].attempts, checks["steady"].time_to_pass_s) == (1, None)
