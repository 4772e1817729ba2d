"""Runs a check suite in a twin: the whole suite as one bash program, one exec per round."""

from __future__ import annotations

import asyncio
import base64
import shlex
import time
from importlib import resources
from typing import Protocol

from patchtwin.runtime.base import ExecResult
from schemas.checks import (
    Check,
    CheckResult,
    CheckStatus,
    CommandCheck,
    HttpCheck,
    LogCheck,
    PackageCheck,
    PortCheck,
    ProcessCheck,
    ServiceCheck,
    SuiteResult,
)
from schemas.events import TwinRef

PROBE_LIBRARY = resources.files("patchtwin.checks").joinpath("probe.sh").read_text()
MARKER = "@@PT "


class Execer(Protocol):
    async def exec(
        self, twin: TwinRef | str, argv: list[str], *, timeout_s: float, output_cap: int = ...
    ) -> ExecResult: ...


def _arg(value: str) -> str:
    """A user-supplied string, decoded inside the twin: nothing in it is ever parsed by bash."""
    encoded = base64.b64encode(value.encode()).decode()
    return f'"$(pt_d {encoded})"'


def _call(index: int, check: Check, log_offsets: dict[str, int]) -> str:
    match check:
        case PortCheck():
            return f"pt_port {index} {check.port} {check.protocol} {check.family}"
        case ServiceCheck():
            return f"pt_service {index} {_arg(check.service)} {check.state}"
        case HttpCheck():
            statuses = " ".join(str(s) for s in check.statuses())
            needle = _arg(check.body_contains or "")
            return (
                f"pt_http {index} {check.method} {_arg(check.url)} {shlex.quote(statuses)} "
                f"{needle} {check.timeout_s:g}"
            )
        case ProcessCheck():
            return f"pt_process {index} {_arg(check.process)} {check.min_count}"
        case PackageCheck():
            wanted = 1 if check.installed else 0
            return f"pt_package {index} {_arg(check.package)} {_arg(check.version or '')} {wanted}"
        case LogCheck():
            offset = log_offsets.get(check.name or "", 0)
            return f"pt_log {index} {_arg(check.path)} {_arg(check.pattern)} {int(offset)}"
        case CommandCheck():
            return f"pt_command {index} {_arg(check.run)} {check.expect_exit} {check.timeout_s:g}"
    raise TypeError(f"no probe for {type(check).__name__}")


def build_script(checks: list[Check], log_offsets: dict[str, int] | None = None) -> str:
    offsets = log_offsets or {}
    calls = "\n".join(_call(i, check, offsets) for i, check in enumerate(checks))
    return f"{PROBE_LIBRARY}\n{calls}\nrm -rf \"$PT_TMP\" 2>/dev/null\nexit 0\n"


def parse_output(checks: list[Check], stdout: str) -> list[CheckResult]:
    """One result per check; a check the program printed nothing for is an `error`."""
    found: dict[int, CheckResult] = {}
    for line in stdout.splitlines():
        if not line.startswith(MARKER):
            continue
        parts = line[len(MARKER) :].split(" ")
        if len(parts) < 3 or not parts[0].isdigit() or int(parts[0]) >= len(checks):
            continue
        index, status = int(parts[0]), parts[1]
        check = checks[index]
        evidence = {}
        for pair in parts[3:]:
            key, _, value = pair.partition("=")
            evidence[key] = _decode(value)
        found[index] = CheckResult(
            name=check.name or "",
            type=check.type,
            critical=check.critical,
            status=CheckStatus(status) if status in CheckStatus._value2member_map_ else CheckStatus.ERROR,
            message=_decode(parts[2]),
            evidence=evidence,
        )
    return [
        found.get(i)
        or CheckResult(
            name=check.name or "",
            type=check.type,
            critical=check.critical,
            status=CheckStatus.ERROR,
            message="the probe returned no result for this check",
        )
        for i, check in enumerate(checks)
    ]


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value).decode("utf-8", "replace")
    except ValueError:
        return value


def round_timeout(checks: list[Check]) -> float:
    budget = 10.0
    for check in checks:
        budget += getattr(check, "timeout_s", 2.0) + 1.0
    return budget


def merge_rounds(rounds: list[list[CheckResult]]) -> list[CheckResult]:
    """Per check, the last round's result with every round's status; disagreement = flaky."""
    merged = []
    for results in zip(*rounds, strict=True):
        last = results[-1].model_copy()
        last.observations = [r.status for r in results]
        failing = next((r for r in results if r.status is not CheckStatus.PASSED), None)
        if last.flaky and failing is not None:
            last.evidence = {**last.evidence, "failing_round": failing.message}
        merged.append(last)
    return merged


async def run_suite(
    runtime: Execer,
    twin: TwinRef,
    checks: list[Check],
    *,
    rounds: int = 1,
    log_offsets: dict[str, int] | None = None,
    pause_s: float = 0.2,
) -> SuiteResult:
    if not checks:
        return SuiteResult()
    started = time.monotonic()
    script = build_script(checks, log_offsets)
    results: list[list[CheckResult]] = []
    for round_index in range(rounds):
        if round_index:
            await asyncio.sleep(pause_s)
        execution = await runtime.exec(
            twin, ["bash", "-c", script], timeout_s=round_timeout(checks), output_cap=4 * 1024 * 1024
        )
        results.append(parse_output(checks, execution.stdout.decode("utf-8", "replace")))
    return SuiteResult(
        results=merge_rounds(results),
        rounds=rounds,
        execs=rounds,
        duration_s=time.monotonic() - started,
    )


def log_offsets_from(baseline: SuiteResult) -> dict[str, int]:
    """Where each log check's file ended at baseline: after-patch scans start there."""
    offsets = {}
    for result in baseline.results:
        if result.type == "log" and str(result.evidence.get("lines", "")).isdigit():
            offsets[result.name] = int(result.evidence["lines"])
    return offsets
