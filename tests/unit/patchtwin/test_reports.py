"""Reports of a verdict: JUnit XML valid for Jenkins' xunit schema, Markdown for a ticket, JSON."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema

from patchtwin.reports import FORMATS, render, render_junit, render_markdown
from schemas import Code, PatchOutcome, RunFailed, VerdictIssued, VerdictStatus
from schemas.state import PackageChange, Socket, StateDiff
from services.analyzer.logic import judge, judge_failure
from tests.unit.services.analyzer.test_logic import E, F, P, completed

JUNIT_XSD = xmlschema.XMLSchema10(Path(__file__).parents[2] / "data" / "junit-10.xsd")


def failed_verdict() -> VerdictIssued:
    return judge(completed(
        [("http GET /", True, [P, P], [F, F]), ("nginx -t", True, [P, P], [P, P]),
         ("old cron", True, [F, F], [F, F]), ("wobbly", True, [P, F], [P, P]),
         ("docs page", False, [P, P], [F, F]), ("probe <broken> & gone", True, [P, P], [E, E])],
        outcome=PatchOutcome(exit_code=0, duration_s=1.5, stderr="warning: \x1b[31mcolour\x00 and nul\n"),
    ))


def test_junit_of_a_failed_run_validates_and_names_the_failing_check_with_its_evidence() -> None:
    xml = render_junit(failed_verdict())

    JUNIT_XSD.validate(xml)
    root = ET.fromstring(xml)
    failing = {c.get("name"): c.find("failure") for c in root.iter("testcase") if c.find("failure") is not None}
    assert set(failing) == {"http GET /", "probe <broken> & gone"}
    failure = failing["http GET /"]
    assert failure is not None
    assert failure.get("type") == Code.CHECK_REGRESSED.value
    assert "passed before the patch, failed after" in (failure.text or "")
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("2", "0", "1")


def test_junit_marks_pre_existing_as_skipped_and_flaky_as_flaky_failure() -> None:
    root = ET.fromstring(render_junit(failed_verdict()))
    cases = {c.get("name"): c for c in root.iter("testcase")}

    assert cases["old cron"].find("skipped") is not None
    flaky = cases["wobbly"].find("flakyFailure")
    assert flaky is not None and flaky.get("type") == Code.CHECK_FLAKY.value
    assert "NONCRITICAL_REGRESSED" in (cases["docs page"].findtext("system-out") or "")


def test_junit_of_a_patch_that_failed_and_of_an_error_verdict_validate() -> None:
    exit3 = judge(completed([("web", True, [P, P], [P, P])],
                            outcome=PatchOutcome(exit_code=3, duration_s=0.2, stderr="boom")))
    error = judge_failure(RunFailed(run_id="unit-3", stage="provisioner", code=Code.IMAGE_UNAVAILABLE,
                                    message="no image for debian 99"))

    for verdict, tag, code in ((exit3, "failure", "PATCH_FAILED"), (error, "error", "IMAGE_UNAVAILABLE")):
        xml = render_junit(verdict)
        JUNIT_XSD.validate(xml)
        marks = [m.get("type") for m in ET.fromstring(xml).iter(tag)]
        assert marks == [code]


def test_markdown_reads_as_a_ticket_body() -> None:
    md = render_markdown(failed_verdict())

    assert md.startswith("## patchtwin: ❌ FAILED — patch `P-1` on `web-01`")
    assert "### Why it failed" in md
    assert "- `CHECK_REGRESSED` **http GET /**" in md
    assert "### Warnings (do not fail the patch)" in md
    assert "| http GET / | command | yes | passed | failed | **regression** |" in md
    assert "<summary>Evidence: http GET / (regression)</summary>" in md
    assert "### Confidence" in md and "| fidelity |" in md
    assert "patchtwin report unit-1 --format json" in md


def test_every_format_renders_and_json_is_the_verdict_itself() -> None:
    verdict = failed_verdict()

    rendered = {fmt: render(verdict, fmt) for fmt in FORMATS}

    assert VerdictIssued.model_validate_json(rendered["json"]) == verdict
    assert verdict.status is VerdictStatus.FAILED


def test_markdown_lists_what_the_patch_changed_in_the_twin() -> None:
    diff = StateDiff(packages_changed=[PackageChange(name="openssl", before="3.0.11", after="3.0.13")],
                     ports_opened=[Socket(proto="tcp6", address="::", port=8443)])
    verdict = judge(completed([("web", True, [P, P], [P, P])],
                              outcome=PatchOutcome(exit_code=0, duration_s=1, state_diff=diff)))

    md = render_markdown(verdict)

    assert "### What the patch changed in the twin" in md
    assert "- packages changed: `openssl 3.0.11 → 3.0.13`" in md
    assert "- ports opened: `" in md
    JUNIT_XSD.validate(render_junit(verdict))


def test_markdown_says_when_each_check_was_ready_after_the_patch() -> None:
    event = completed([("slow", True, [P, P], [P, P]), ("down", True, [P, P], [F, F])])
    slow, down = event.after.results
    slow.attempts, slow.time_to_pass_s = 3, 3.1
    down.attempts = 4

    rows = {line.split("|")[1].strip(): line for line in render_markdown(judge(event)).splitlines()
            if line.startswith("| slow") or line.startswith("| down")}

    assert "| 3.1 s, attempt 3 |" in rows["slow"]
    assert "| never |" in rows["down"]
