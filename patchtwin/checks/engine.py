"""Runs a check suite in a twin: the whole suite as one bash program, one exec per round.

A run is `repeats` repeats of the suite. The first repeat waits for readiness: a check that
fails and may retry (`retries`, `timeout`) is run again, with backoff, in later rounds that
carry only the checks then due, until it passes or its deadline passes. Later repeats are one
round each, every check once: a check whose repeats disagree is flaky. The twin gathers the
facts and matches text; numeric judgements (version ordering, latency limits, percentiles)
are made here, where they can be unit-tested.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from patchtwin.checks.versions import ORDERINGS, satisfies
from patchtwin.twins.runtime import ExecResult
from schemas.checks import (
    Check,
    CheckResult,
    CheckStatus,
    CommandCheck,
    FileCheck,
    HttpCheck,
    LogCheck,
    PackageCheck,
    PerformanceCheck,
    PortCheck,
    ProcessCheck,
    ServiceCheck,
    SuiteResult,
)
from schemas.events import TwinRef

PROBE_LIBRARY = resources.files("patchtwin.checks").joinpath("probe.sh").read_text()
#: The probe's $0 inside the twin: lets a `process` check tell the probe's own processes apart.
PROBE_ARGV0 = "patchtwin-probe"
#: Checks due within this many seconds of each other go in the same retry round.
COALESCE_S = 0.05


class Execer(Protocol):
    async def exec(
        self, twin: TwinRef | str, argv: list[str], *, timeout_s: float, output_cap: int = ...
    ) -> ExecResult: ...


def _q(value: str) -> str:
    """A user-supplied string as one bash word that bash takes literally."""
    if "\x00" in value:  # argv cannot carry NUL; decode it in the twin instead
        return f'"$(printf %s {base64.b64encode(value.encode()).decode()} | base64 -d)"'
    return shlex.quote(value)


def _opt(value: str | None) -> str:
    return _q(value or "")


@dataclass
class _Context:
    """What a round needs besides the specs: log marks and the baseline's results."""

    baseline: dict[str, CheckResult] = field(default_factory=dict)
    marks: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict)


def _marks_arg(marks: list[dict[str, Any]] | None) -> str:
    if marks is None:
        return "-"
    return "\n".join(f"{m['inode']} {m['size']} {m['path']}" for m in marks)


def _call(index: int, check: Check, context: _Context) -> str:
    match check:
        case PortCheck():
            return (f"pt_port {index} {check.port} {check.protocol} {check.family} "
                    f"{int(check.listening)} {int(check.connect)}")
        case ServiceCheck():
            enabled = "-" if check.enabled is None else int(check.enabled)
            return f"pt_service {index} {_q(check.service)} {check.state or '-'} {enabled} {check.manager}"
        case HttpCheck():
            headers = "\n".join(f"{k}: {v}" for k, v in check.headers.items())
            body = "-" if check.body is None else check.body
            statuses = " ".join(str(s) for s in check.statuses())
            return (f"pt_http {index} {check.method} {_q(check.url)} {_q(headers)} {_q(body)} "
                    f"{_q(statuses)} {_opt(check.body_contains)} {_opt(check.body_regex)} {check.timeout_s:g}")
        case ProcessCheck():
            low, high = check.bounds()
            return (f"pt_process {index} {_q(check.process or '-')} {_opt(check.cmdline)} {low} "
                    f"{'-' if high is None else high} {_opt(check.user)}")
        case PackageCheck():
            return f"pt_package {index} {_q(check.package)} {int(check.installed)}"
        case LogCheck():
            marks = _marks_arg(context.marks.get(check.name or ""))
            return f"pt_log {index} {_q(check.path)} {_q(check.pattern)} {check.max_count} {_q(marks)}"
        case CommandCheck():
            return (f"pt_command {index} {_q(check.run)} {check.expect_exit} {check.timeout_s:g} "
                    f"{_opt(check.stdout_contains)} {_opt(check.stdout_regex)} "
                    f"{_opt(check.stderr_contains)} {_opt(check.stderr_regex)}")
        case FileCheck():
            return (f"pt_file {index} {_q(check.path)} {int(check.exists)} {check.kind} "
                    f"{_opt(check.wanted_mode())} {_opt(check.owner)} {_opt(check.group)} "
                    f"{_opt(check.contains)} {_opt(check.regex)} {_opt((check.sha256 or '').lower())}")
        case PerformanceCheck():
            kind = "http" if check.url else "command"
            return (f"pt_perf {index} {kind} {check.samples} {check.timeout_s:g} {check.method} "
                    f"{_opt(check.url)} {_opt(check.run)}")
    raise TypeError(f"no probe for {type(check).__name__}")


def build_script(checks: Sequence[Check], indices: Sequence[int] | None = None,
                 context: _Context | None = None) -> str:
    """The round's program: the library, then one call per check (only `indices`, if given)."""
    ctx = context or _Context()
    chosen = list(range(len(checks)) if indices is None else indices)
    alone = [i for i in chosen if checks[i].type in ALONE_FIRST]
    aside = [i for i in chosen if checks[i].type in SIDE_BY_SIDE]
    after = [i for i in chosen if i not in alone and i not in aside]
    calls = [_call(i, checks[i], ctx) for i in alone]
    if len(aside) > 1:
        calls += [f"pt_aside {i} {_call(i, checks[i], ctx)}" for i in aside] + ["pt_gather"]
    else:
        calls += [_call(i, checks[i], ctx) for i in aside]
    calls += [_call(i, checks[i], ctx) for i in after]
    return f"{PROBE_LIBRARY}\n" + "\n".join(calls) + "\nrm -rf \"$PT_TMP\" 2>/dev/null\nexit 0\n"


#: Read-only families whose figures do not depend on what else runs: side by side in a round.
SIDE_BY_SIDE = frozenset({"port", "service", "package", "file", "log"})
#: Process checks count processes, so they run first, before the round starts any of its own
#: (a `service nginx status` runs a process named nginx). The rest (http and performance time
#: their answers; command runs the user's own program) run one at a time after the others.
ALONE_FIRST = frozenset({"process"})


def round_timeout(checks: Sequence[Check], indices: Sequence[int]) -> float:
    return 10.0 + sum(checks[i].attempt_budget_s() for i in indices)


def parse_output(checks: Sequence[Check], stdout: str, indices: Sequence[int] | None = None,
                 problem: str = "") -> dict[int, CheckResult]:
    """Index → raw result for every asked-for check; one the program said nothing about is an error."""
    wanted = set(range(len(checks)) if indices is None else indices)
    found: dict[int, CheckResult] = {}
    for line in stdout.splitlines():
        if not line.startswith('{"i":'):
            continue
        try:
            data = json.loads(line)
            index = int(data["i"])
            status = CheckStatus(data["s"])
        except (ValueError, KeyError, TypeError):
            continue
        if index not in wanted:
            continue
        check = checks[index]
        found[index] = CheckResult(
            name=check.name or "", type=check.type, critical=check.critical, status=status,
            message=str(data.get("m", "")), evidence=dict(data.get("e") or {}),
        )
    for index in wanted - set(found):
        check = checks[index]
        found[index] = CheckResult(
            name=check.name or "", type=check.type, critical=check.critical, status=CheckStatus.ERROR,
            message=f"the probe returned no result for this check{': ' + problem if problem else ''}",
        )
    return found


# -- judgements made outside the twin ------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(us: Any) -> float | None:
    return round(us / 1000, 3) if isinstance(us, int | float) else None


def finish(check: Check, raw: CheckResult, baseline: CheckResult | None) -> CheckResult:
    """Completes what the twin reported: units, version ordering, latency limits, percentiles."""
    result = raw.model_copy(deep=True)
    ev = result.evidence
    for key in ("latency_us", "connect_us", "duration_us"):
        if key in ev:
            ev[key.replace("_us", "_ms")] = _ms(ev.pop(key))
    if result.status is CheckStatus.ERROR:
        return result
    match check:
        case PackageCheck() if check.constraint() and ev.get("installed") is True:
            op, wanted = check.constraint() or ("==", "")
            manager, found = str(ev.get("manager")), str(ev.get("version", ""))
            ev["constraint"] = f"{op} {wanted}"
            if manager not in ORDERINGS:
                if op == "==" and found == wanted:
                    return result
                result.status = CheckStatus.ERROR
                result.message = f"no version ordering known for {manager}; only an exact `version` works there"
            elif not satisfies(manager, found, op, wanted):
                result.status = CheckStatus.FAILED
                result.message = f"{check.package} is {found}, expected {op} {wanted} ({manager} ordering)"
            else:
                result.message = f"{check.package} {found} satisfies {op} {wanted} ({manager} ordering)"
        case HttpCheck() if check.max_latency_ms is not None and result.status is CheckStatus.PASSED:
            latency = ev.get("latency_ms")
            if latency is not None and latency > check.max_latency_ms:
                result.status = CheckStatus.FAILED
                result.message = f"status {ev.get('status')} but {latency:g} ms > {check.max_latency_ms:g} ms"
        case LogCheck():
            ev["files"] = [_log_file(line) for line in ev.get("files", [])]
        case PerformanceCheck():
            _judge_performance(check, result, baseline)
    return result


def _log_file(line: str) -> dict[str, Any]:
    inode, size, start, path = line.split(" ", 3)
    return {"path": path, "inode": int(inode), "size": int(size), "from": int(start)}


def _judge_performance(check: PerformanceCheck, result: CheckResult, baseline: CheckResult | None) -> None:
    ev = result.evidence
    raw = str(ev.pop("samples_us", "")).split()
    samples = [int(s) / 1000 for s in raw if s.isdigit()]
    if not samples:
        result.status = CheckStatus.ERROR
        result.message = "no latency samples came back"
        return
    stats = {"p50_ms": percentile(samples, 50), "p95_ms": percentile(samples, 95), "max_ms": max(samples)}
    ev.update({k: round(v, 3) for k, v in stats.items()})
    ev["samples"] = len(samples)
    if result.status is not CheckStatus.PASSED:
        return
    observed = stats[f"{check.statistic}_ms"]
    limits: list[tuple[float, str]] = []
    if check.max_ms is not None:
        limits.append((check.max_ms, f"{check.max_ms:g} ms"))
    before = baseline.evidence.get(f"{check.statistic}_ms") if baseline is not None else None
    if check.max_ratio is not None and isinstance(before, int | float):
        limit = max(before * check.max_ratio, before + check.slack_ms)
        ev["baseline_ms"] = before
        ev["relative_limit_ms"] = round(limit, 3)
        limits.append((limit, f"{limit:.1f} ms (baseline {before:g} ms x {check.max_ratio:g})"))
    summary = f"{check.statistic} {observed:.1f} ms over {len(samples)} samples"
    broken = [text for limit, text in limits if observed > limit]
    if broken:
        result.status = CheckStatus.FAILED
        result.message = f"{summary}, above {' and '.join(broken)}"
    else:
        result.message = summary + (f", within {' and '.join(t for _, t in limits)}" if limits else "")


# -- rounds, readiness, repeats ---------------------------------------------------------------------


@dataclass
class _Runner:
    runtime: Execer
    twin: TwinRef
    checks: Sequence[Check]
    context: _Context
    execs: int = 0
    exec_durations: list[float] = field(default_factory=list)
    #: when the last round began (monotonic): repeats are paced start to start
    last_round_at: float = 0.0

    async def round(self, indices: Sequence[int]) -> dict[int, CheckResult]:
        """One exec: the asked-for checks, raw results finished against the baseline."""
        script = build_script(self.checks, indices, self.context)
        self.execs += 1
        self.last_round_at = time.monotonic()
        execution = await self.runtime.exec(
            self.twin, ["bash", "-c", script, PROBE_ARGV0],
            timeout_s=round_timeout(self.checks, indices), output_cap=8 * 1024 * 1024,
        )
        self.exec_durations.append(round(execution.duration_s, 4))
        problem = ""
        if execution.timed_out:
            problem = "the probe round timed out"
        elif execution.exit_code not in (0, None):
            problem = f"the probe exited with {execution.exit_code}: " + \
                execution.stderr.decode("utf-8", "replace")[-300:]
        raw = parse_output(self.checks, execution.stdout.decode("utf-8", "replace"), indices, problem)
        return {
            i: finish(self.checks[i], result, self.context.baseline.get(self.checks[i].name or ""))
            for i, result in raw.items()
        }

    def remember_marks(self, results: dict[int, CheckResult]) -> None:
        """A log check without baseline marks takes its marks from its first round."""
        for i, result in results.items():
            check = self.checks[i]
            if (isinstance(check, LogCheck) and self.context.marks.get(check.name or "") is None
                    and result.status is not CheckStatus.ERROR):
                self.context.marks[check.name or ""] = result.evidence.get("files", [])

    async def ready(self, started: float) -> dict[int, CheckResult]:
        """The first repeat: every check once, then failing ones again as their retries allow."""
        final: dict[int, CheckResult] = {}
        attempts: dict[int, int] = {}
        due: dict[int, float] = {}
        batch: list[int] = list(range(len(self.checks)))
        first_round = True
        while batch:
            results = await self.round(batch)
            if first_round:
                self.remember_marks(results)
                first_round = False
            now = time.monotonic()
            for i, result in results.items():
                check = self.checks[i]
                attempts[i] = attempts.get(i, 0) + 1
                result.attempts = attempts[i]
                if result.status is CheckStatus.PASSED:
                    result.time_to_pass_s = round(now - started, 3)
                    final[i] = result
                    continue
                final[i] = result
                wait = _next_wait(check, attempts[i], now - started)
                if wait is not None:
                    due[i] = now + wait
            if not due:
                break
            first = min(due.values())
            await asyncio.sleep(max(0.0, first - time.monotonic()))
            batch = sorted(i for i, t in due.items() if t <= first + COALESCE_S)
            for i in batch:
                due.pop(i)
        return final


def _next_wait(check: Check, attempts: int, elapsed: float) -> float | None:
    """Seconds until the next attempt of a failing check, or None when it may not retry."""
    limit = check.max_retries()
    if limit is not None and attempts > limit:
        return None
    wait = min(check.interval * check.backoff ** (attempts - 1), check.max_interval)
    if check.timeout is not None:
        left = check.timeout - elapsed
        if left <= 0:
            return None
        wait = min(wait, left)
    return wait


def merge_repeats(repeats: list[dict[int, CheckResult]], count: int) -> list[CheckResult]:
    """Per check: agreeing repeats give the last result; disagreeing ones a flaky, non-passed one."""
    merged: list[CheckResult] = []
    for i in range(count):
        seen = [r[i] for r in repeats]
        first = seen[0]
        observations = [r.status for r in seen]
        if len(set(observations)) <= 1:
            result = seen[-1].model_copy()
        else:
            bad = next(r for r in seen if r.status is CheckStatus.FAILED) if CheckStatus.FAILED in observations \
                else next(r for r in seen if r.status is not CheckStatus.PASSED)
            result = bad.model_copy()
            result.message = f"flaky ({'/'.join(o.value for o in observations)}): {bad.message}"
            result.evidence = {**bad.evidence, "repeats": [{"status": r.status.value, "message": r.message}
                                                           for r in seen]}
        result.observations = observations
        result.attempts = first.attempts
        result.time_to_pass_s = first.time_to_pass_s
        merged.append(result)
    return merged


async def run_suite(
    runtime: Execer,
    twin: TwinRef,
    checks: Sequence[Check],
    *,
    rounds: int = 1,
    baseline: SuiteResult | None = None,
    pause_s: float = 0.2,
) -> SuiteResult:
    """The suite on the twin: readiness in the first repeat, then `rounds - 1` single-round repeats.

    Repeats sample the twin at least `pause_s` apart, start to start: a round that itself
    takes that long is followed at once (an idle pause after it would only add latency).

    Without `baseline` this *is* the baseline: log checks take their marks in the first round.
    With it, log checks count lines added since the baseline's marks and performance limits
    may be relative to the baseline's figures.
    """
    if not checks:
        return SuiteResult()
    started = time.monotonic()
    context = _Context(baseline=baseline.by_name() if baseline is not None else {})
    if baseline is not None:
        context.marks = log_marks_from(baseline)
    runner = _Runner(runtime, twin, checks, context)
    repeats = [await runner.ready(started)]
    everything = list(range(len(checks)))
    for _ in range(rounds - 1):
        await asyncio.sleep(max(0.0, runner.last_round_at + pause_s - time.monotonic()))
        repeats.append(await runner.round(everything))
    return SuiteResult(
        results=merge_repeats(repeats, len(checks)),
        rounds=rounds,
        execs=runner.execs,
        duration_s=round(time.monotonic() - started, 4),
        exec_durations_s=runner.exec_durations,
    )


def log_marks_from(baseline: SuiteResult) -> dict[str, list[dict[str, Any]] | None]:
    """Where each log check's files ended at the baseline (inode and size): later scans start there."""
    marks: dict[str, list[dict[str, Any]] | None] = {}
    for result in baseline.results:
        files = result.evidence.get("files")
        if result.type == "log" and isinstance(files, list):
            marks[result.name] = [f for f in files if isinstance(f, dict) and {"inode", "size", "path"} <= set(f)]
    return marks
