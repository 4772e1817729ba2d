"""The engine's judgements outside the twin: parsing the probe's JSON lines, percentiles and
limits, version constraints, retry waits, and how repeats become flaky."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time

import pytest
from pydantic import TypeAdapter

from patchtwin.checks.engine import (
    PROBE_LIBRARY,
    _next_wait,
    _q,
    build_script,
    finish,
    merge_repeats,
    parse_output,
    percentile,
    run_suite,
)
from patchtwin.twins import ExecResult
from schemas.checks import Check, CheckResult, CheckStatus
from schemas.events import TwinRef

CHECK: TypeAdapter[Check] = TypeAdapter(Check)


def _check(**spec: object) -> Check:
    return CHECK.validate_python(spec)


def _result(check: Check, outcome: str, message: str = "", **evidence: object) -> CheckResult:
    return CheckResult(name=check.name or "", type=check.type, status=CheckStatus(outcome), message=message,
                       evidence=dict(evidence))


def test_parse_output_reads_json_lines_and_reports_silent_checks_as_errors() -> None:
    checks = [_check(type="port", port=80), _check(type="port", port=81)]
    stdout = 'noise\n{"i":0,"s":"passed","m":"tcp port 80 is listening","e":{"sockets":["tcp 0.0.0.0:80"]}}\n'
    results = parse_output(checks, stdout, problem="the probe round timed out")
    assert results[0].status is CheckStatus.PASSED
    assert results[0].evidence == {"sockets": ["tcp 0.0.0.0:80"]}
    assert results[1].status is CheckStatus.ERROR
    assert "timed out" in results[1].message


@pytest.mark.parametrize("value", ["plain", "it's", "$(touch /tmp/x) `id` ${HOME} \\ \" ' \n\t", "\x00nul", "é✓"])
def test_user_strings_reach_bash_verbatim(value: str) -> None:
    out = subprocess.run(["bash", "-c", f"printf %s {_q(value)}"], capture_output=True, check=True).stdout
    assert out == value.replace("\x00", "").encode()  # argv cannot carry NUL; all else arrives as sent


def test_the_program_is_valid_bash_for_every_family() -> None:
    checks = [
        _check(type="port", port=80), _check(type="service", name="nginx", enabled=True),
        _check(type="http", url="http://127.0.0.1/", headers={"X": "y"}, body="b", body_regex="a|b"),
        _check(type="process", cmdline="nginx: .*"), _check(type="package", name="openssl"),
        _check(type="log", path="/var/log/*.log", pattern="crit"), _check(type="command", run="echo 'hi'"),
        _check(type="file", path="/etc/passwd", mode="644"), _check(type="performance", run="true"),
    ]
    subprocess.run(["bash", "-n", "-c", build_script(checks)], check=True)


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50, 95, 100)
    assert percentile([7.0], 95) == 7.0


def test_performance_gets_p50_p95_max_and_an_absolute_limit() -> None:
    check = _check(type="performance", url="http://127.0.0.1/", samples=20, max_ms=10)
    samples = " ".join(str(us) for us in [2000] * 18 + [30000, 40000])  # two slow samples of twenty
    result = finish(check, _result(check, "passed", samples_us=samples, errors=0), None)
    assert (result.evidence["p50_ms"], result.evidence["p95_ms"], result.evidence["max_ms"]) == (2, 30, 40)
    assert result.status is CheckStatus.FAILED
    assert "p95 30.0 ms over 20 samples, above 10 ms" in result.message


def test_performance_relative_limit_uses_the_baseline_with_a_slack_floor() -> None:
    check = _check(type="performance", run="true", samples=4, statistic="p50", max_ratio=1.5, slack_ms=5)
    baseline = CheckResult(name=check.name or "", type="performance", status=CheckStatus.PASSED,
                           evidence={"p50_ms": 2.0})
    near = finish(check, _result(check, "passed", samples_us="6000 6000 6000 6000"), baseline)
    assert near.status is CheckStatus.PASSED  # 6 ms < max(2 x 1.5, 2 + 5) = 7 ms
    assert near.evidence["relative_limit_ms"] == 7.0
    far = finish(check, _result(check, "passed", samples_us="9000 9000 9000 9000"), baseline)
    assert far.status is CheckStatus.FAILED and "baseline 2 ms" in far.message


def test_package_version_constraint_is_judged_with_the_managers_ordering() -> None:
    check = _check(type="package", name="openssl", version=">= 3.0.11-1~deb12u2")
    old = finish(check, _result(check, "passed", manager="dpkg", installed=True, version="3.0.11-1~deb12u1"), None)
    assert old.status is CheckStatus.FAILED
    assert old.message == "openssl is 3.0.11-1~deb12u1, expected >= 3.0.11-1~deb12u2 (dpkg ordering)"
    new = finish(check, _result(check, "passed", manager="dpkg", installed=True, version="3.0.20-1~deb12u2"), None)
    assert new.status is CheckStatus.PASSED
    apk = finish(check, _result(check, "passed", manager="apk", installed=True, version="3.1.4-r5"), None)
    assert apk.status is CheckStatus.ERROR and "no version ordering" in apk.message


def test_http_latency_over_the_limit_fails_with_the_figure() -> None:
    check = _check(type="http", url="http://127.0.0.1/", max_latency_ms=5)
    result = finish(check, _result(check, "passed", "status 200", status=200, latency_us=12500), None)
    assert result.status is CheckStatus.FAILED
    assert result.evidence["latency_ms"] == 12.5
    assert "12.5 ms > 5 ms" in result.message


def test_retry_waits_back_off_up_to_the_cap_and_stop_at_the_deadline() -> None:
    check = _check(type="port", port=80, interval=0.5, backoff=2, max_interval=1.5, timeout=3)
    waits = [_next_wait(check, n, elapsed) for n, elapsed in [(1, 0.0), (2, 0.5), (3, 1.5), (4, 2.9), (5, 3.0)]]
    assert waits == [0.5, 1.0, 1.5, pytest.approx(0.1), None]
    counted = _check(type="port", port=80, retries=2)
    assert [_next_wait(counted, n, 0.0) for n in (1, 2, 3)] == [1.0, 1.5, None]
    assert _next_wait(_check(type="port", port=80), 1, 0.0) is None


def test_disagreeing_repeats_are_flaky_and_never_passed() -> None:
    check = _check(type="http", url="http://127.0.0.1/")
    first = _result(check, "passed", "status 200")
    first.attempts, first.time_to_pass_s = 3, 1.2
    merged = merge_repeats([{0: first}, {0: _result(check, "failed", "status 502")}], 1)[0]
    assert merged.flaky and merged.status is CheckStatus.FAILED
    assert merged.observations == [CheckStatus.PASSED, CheckStatus.FAILED]
    assert merged.message == "flaky (passed/failed): status 502"
    assert (merged.attempts, merged.time_to_pass_s) == (3, 1.2)
    assert json.loads(merged.model_dump_json())["flaky"] is True
    steady = merge_repeats([{0: _result(check, "passed")}, {0: _result(check, "passed")}], 1)[0]
    assert not steady.flaky and steady.status is CheckStatus.PASSED


def test_the_probe_emits_valid_json_whatever_the_evidence_holds() -> None:
    nasty = "quote \" backslash \\ tab \t cr \r bell \x07 esc \x1b unicode é ✓ end"
    program = f"{build_script([])}\npt_emit 0 failed {_q(nasty)} out {_q(nasty)} '#n' 42 '#ok' true " \
              f"'#bad' 012 @list {_q('a' + chr(10) + 'b')}\n".replace("exit 0\n", "")
    line = subprocess.run(["bash", "-c", program], capture_output=True, check=True, text=True).stdout
    data = json.loads(line)
    assert data["m"] == data["e"]["out"] == nasty
    assert (data["e"]["n"], data["e"]["ok"], data["e"]["bad"], data["e"]["list"]) == (42, True, "012", ["a", "b"])


class _TimedExecer:
    """A twin whose every probe round takes `round_s` and passes; it records when each began."""

    def __init__(self, round_s: float) -> None:
        self.round_s = round_s
        self.began: list[float] = []
        self.ended: list[float] = []

    async def exec(self, twin: object, argv: list[str], *, timeout_s: float, output_cap: int = 0) -> ExecResult:
        self.began.append(time.monotonic())
        await asyncio.sleep(self.round_s)
        self.ended.append(time.monotonic())
        out = b'{"i":0,"s":"passed","m":"ok","e":{}}\n'
        return ExecResult(exit_code=0, stdout=out, stderr=b"", stdout_bytes=len(out), stderr_bytes=0,
                          duration_s=self.round_s, timed_out=False)


TWIN = TwinRef(id="x", name="x", image="i")


async def test_quick_repeats_are_spaced_by_the_pause_start_to_start() -> None:
    twin = _TimedExecer(round_s=0.01)
    suite = await run_suite(twin, TWIN, [_check(type="port", port=80)], rounds=3, pause_s=0.2)
    assert suite.execs == 3 and [r.observations for r in suite.results] == [[CheckStatus.PASSED] * 3]
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(twin.began))


async def test_a_round_as_long_as_the_pause_is_followed_at_once() -> None:
    twin = _TimedExecer(round_s=0.3)
    await run_suite(twin, TWIN, [_check(type="port", port=80)], rounds=2, pause_s=0.2)
    assert twin.began[1] - twin.ended[0] < 0.1  # no idle pause after a round that took longer


def test_a_round_runs_process_checks_first_read_only_ones_side_by_side_and_timed_ones_after() -> None:
    checks = [_check(type="http", url="http://127.0.0.1:9/"), _check(type="file", path="/etc/passwd"),
              _check(type="process", name="nginx"), _check(type="port", port=9),
              _check(type="command", run="true")]
    calls = [line.split()[0:2] for line in build_script(checks).removeprefix(PROBE_LIBRARY).splitlines()
             if line.startswith("pt_")]
    assert calls == [["pt_process", "2"], ["pt_aside", "1"], ["pt_aside", "3"], ["pt_gather"],
                     ["pt_http", "0"], ["pt_command", "4"]]


def test_checks_run_side_by_side_each_report_their_own_result() -> None:
    checks = [_check(type="file", path="/etc/passwd"), _check(type="file", path="/nonexistent/x", exists=False),
              _check(type="file", path="/nonexistent/y"), _check(type="command", run="echo hi", stdout_contains="hi")]
    out = subprocess.run(["bash", "-c", build_script(checks), "patchtwin-probe"], capture_output=True, check=True,
                         timeout=60).stdout.decode()
    results = parse_output(checks, out)
    assert [results[i].status for i in range(4)] == [CheckStatus.PASSED, CheckStatus.PASSED, CheckStatus.FAILED,
                                                     CheckStatus.PASSED]
