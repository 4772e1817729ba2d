"""Verdicts on real runs (Tansu, PostgreSQL, Docker twins): classification, status rules,
confidence with flaky checks, and the stored reports as CI and a ticket read them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from tests.clients import new_run_id, nginx_request, publish, verdicts_of

JUNIT_XSD = Path(__file__).parents[1] / "data" / "junit-10.xsd"
MARKER = "/etc/patchtwin-test-fixed"

#: Fails before and after the patch: nothing the patch did.
PRE_EXISTING = {"type": "command", "name": "legacy cron file", "run": "test -f /etc/cron.d/legacy"}
#: Fails before, passes after: the patch creates the marker.
FIXED = {"type": "command", "name": "hardening marker", "run": f"test -f {MARKER}"}
#: Passes before, fails after the patch removes the default page; not critical.
DOCS = {"type": "command", "name": "default page present", "critical": False,
        "run": "test -f /var/www/html/index.nginx-debian.html"}
#: Passes before, fails after the patch moves the config away; critical (the default).
CONFIG = {"type": "command", "name": "nginx config present", "run": "test -f /etc/nginx/nginx.conf"}
#: Alternates between passing and failing on every round: a counter file in the twin.
FLIP = {"type": "command", "name": "flip-flop", "run":
        "n=$(cat /tmp/flip 2>/dev/null || echo 0); echo $((n+1)) >/tmp/flip; [ $((n % 2)) -eq 0 ]"}
#: A command's latency: fast until the patch leaves the marker that slows it by 1.2 s; not critical.
#: The limit leaves room for a loaded machine (a bare `[ -f ]` took up to 140 ms here).
LATENCY = {"type": "performance", "name": "status latency", "critical": False, "samples": 4, "max_ms": 600,
           "run": "if [ -f /etc/patchtwin-slow ]; then sleep 1.2; fi"}
STEADY = [{"type": "process", "name": "nginx"}, {"type": "service", "name": "nginx"}]

FIXING_PATCH = f"#!/bin/sh\nset -e\ntouch {MARKER}\nrm /var/www/html/index.nginx-debian.html\n"
BREAKING_PATCH = "#!/bin/sh\nset -e\nmv /etc/nginx/nginx.conf /etc/nginx/nginx.conf.old\n"

#: The asset pins an nginx version the twin's image does not have: half its declared facts hold.
UNLIKE = {"packages": {"nginx": "0.1-production"}}

RUNS: dict[str, tuple[str, list[dict[str, Any]], dict[str, Any]]] = {
    "mixed": (FIXING_PATCH, [PRE_EXISTING, FIXED, DOCS, *STEADY], {}),
    "critical": (BREAKING_PATCH, [CONFIG, *STEADY], {}),
    "slow": ("touch /etc/patchtwin-slow", [LATENCY, *STEADY], {}),
    "steady": ("true", STEADY, {}),
    "flaky": ("true", [*STEADY, FLIP], {}),
    "unlike": ("true", STEADY, UNLIKE),
}


@pytest.fixture(scope="module")
async def verdicts(pipeline: App, settings: Settings) -> dict[str, dict[str, Any]]:
    """The runs, submitted together (they run side by side), and their verdicts."""
    run_ids = {name: new_run_id(f"verdict-{name}") for name in RUNS}
    for name, (script, checks, asset) in RUNS.items():
        request = nginx_request(run_ids[name], script, checks=checks)
        request["asset"].update(asset)
        await publish(settings, "twin.requested", request)
    found = await asyncio.gather(*(verdicts_of(settings, run_id, settle_s=0) for run_id in run_ids.values()))
    return {name: one for name, [one, *_] in zip(run_ids, found, strict=True)}


def _by_name(verdict: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in verdict["checks"]}


def _warnings(verdict: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(w["code"], w.get("check")) for w in verdict["warnings"]}


def test_a_pre_existing_failure_passes_with_a_warning(verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts["mixed"]

    assert verdict["status"] == "passed", verdict["summary"]
    assert _by_name(verdict)["legacy cron file"]["classification"] == "pre_existing"
    assert ("CHECK_PRE_EXISTING", "legacy cron file") in _warnings(verdict)


def test_a_check_the_patch_fixes_is_fixed(verdicts: dict[str, dict[str, Any]]) -> None:
    check = _by_name(verdicts["mixed"])["hardening marker"]

    assert (check["baseline"], check["after"], check["classification"]) == ("failed", "passed", "fixed")


def test_a_regressed_non_critical_check_passes_with_a_warning(verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts["mixed"]

    assert verdict["status"] == "passed"
    assert _by_name(verdict)["default page present"]["classification"] == "regression"
    assert ("NONCRITICAL_REGRESSED", "default page present") in _warnings(verdict)
    assert verdict["issues"] == []


def test_a_regressed_critical_check_fails_the_patch(verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts["critical"]

    assert verdict["status"] == "failed"
    assert [(i["code"], i["check"]) for i in verdict["issues"]] == [("CHECK_REGRESSED", "nginx config present")]
    assert verdict["confidence_formula"].startswith("regression: 100 * stability")


def test_an_exceeded_performance_limit_fails_the_patch_even_when_not_critical(
    verdicts: dict[str, dict[str, Any]],
) -> None:
    verdict = verdicts["slow"]

    assert verdict["status"] == "failed", verdict["summary"]
    assert [(i["code"], i["check"]) for i in verdict["issues"]] == [("PERFORMANCE_LIMIT_EXCEEDED", "status latency")]
    check = _by_name(verdict)["status latency"]
    assert check["baseline_evidence"]["samples"] == 4 and check["evidence"]["p95_ms"] > 600
    factors = {f["name"]: f["value"] for f in verdict["confidence_factors"]}
    assert factors["sample_factor"] == pytest.approx((4 / 50) ** 0.5, abs=1e-3)


def test_flaky_checks_lower_the_confidence_of_the_same_run(verdicts: dict[str, dict[str, Any]]) -> None:
    steady, flaky = verdicts["steady"], verdicts["flaky"]

    assert _by_name(flaky)["flip-flop"]["classification"] == "flaky"
    assert ("CHECK_FLAKY", "flip-flop") in _warnings(flaky)
    assert (steady["status"], flaky["status"]) == ("passed", "passed")
    assert flaky["confidence"] < steady["confidence"]
    stability = {f["name"]: f["value"] for f in flaky["confidence_factors"]}["stability"]
    assert stability == pytest.approx(2 / 3, abs=1e-3)


def test_a_twin_less_like_its_asset_lowers_the_confidence(verdicts: dict[str, dict[str, Any]]) -> None:
    steady, unlike = verdicts["steady"], verdicts["unlike"]
    fidelity = {name: {f["name"]: f for f in v["confidence_factors"]}["fidelity"]
                for name, v in (("steady", steady), ("unlike", unlike))}

    assert fidelity["steady"]["value"] == 1.0  # nginx declared and running
    assert fidelity["unlike"]["value"] == 0.5
    assert "package nginx" in fidelity["unlike"]["observed"]
    assert unlike["confidence"] == pytest.approx(steady["confidence"] / 2, abs=0.1)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": settings.database_url or "",
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or ""}
    return subprocess.run([sys.executable, "-m", "patchtwin", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_junit_report_of_a_failed_run_validates_and_names_the_failing_check(
    verdicts: dict[str, dict[str, Any]], settings: Settings
) -> None:
    done = _cli(settings, "report", verdicts["critical"]["run_id"], "--format", "junit")

    assert done.returncode == 0, done.stderr
    xmlschema.XMLSchema10(JUNIT_XSD).validate(done.stdout)
    [failing] = [c for c in ET.fromstring(done.stdout).iter("testcase") if c.find("failure") is not None]
    assert failing.get("name") == "nginx config present"
    failure = failing.find("failure")
    assert failure is not None and failure.get("type") == "CHECK_REGRESSED"
    assert '"before"' in (failure.text or "") and '"after"' in (failure.text or "")


def test_markdown_and_json_reports_are_stored_with_the_verdict(
    verdicts: dict[str, dict[str, Any]], settings: Settings
) -> None:
    run_id = verdicts["mixed"]["run_id"]

    markdown = _cli(settings, "report", run_id, "--format", "markdown")
    as_json = _cli(settings, "report", run_id, "--format", "json")

    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("## patchtwin: ✅ PASSED")
    assert "| hardening marker | command | yes | failed | passed | **fixed** |" in markdown.stdout
    assert json.loads(as_json.stdout)["event_id"] == verdicts["mixed"]["event_id"]


def test_runs_lists_recent_runs_and_show_shows_one(
    verdicts: dict[str, dict[str, Any]], settings: Settings
) -> None:
    runs = _cli(settings, "runs", "--limit", "50")
    show = _cli(settings, "show", verdicts["flaky"]["run_id"])

    assert runs.returncode == 0, runs.stderr
    for verdict in verdicts.values():
        line = next(line for line in runs.stdout.splitlines() if verdict["run_id"] in line)
        assert verdict["status"] in line and f"{verdict['confidence']:g}" in line
    assert show.returncode == 0, show.stderr
    assert "CHECK_FLAKY" in show.stdout and "flip-flop" in show.stdout and "stability" in show.stdout


def test_report_of_an_unknown_run_is_a_coded_error(settings: Settings, pipeline: App) -> None:
    done = _cli(settings, "report", "no-such-run-here")

    assert done.returncode == 2
    assert "RUN_NOT_FOUND" in done.stderr
