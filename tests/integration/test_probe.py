"""The probe engine on real Docker twins (patchtwin/debian-nginx:12, no network): every family
passing and failing for the right reason, one exec per round, readiness, flakiness, logs since
the baseline."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import TypeAdapter

from patchtwin.checks import run_suite
from patchtwin.twins import DockerRuntime, TwinLimits
from patchtwin.twins.images import base_ref, web_ref
from schemas.checks import Check, CheckResult, CheckStatus, SuiteResult, unique_names
from schemas.events import TwinRef

#: Built once on this machine (needs the Debian mirror) and kept, like the demo images.
SUPERVISOR_IMAGE = "patchtwin-probe-test/debian-supervisor:12"
SUPERVISOR_DOCKERFILE = f"""FROM {base_ref("12")}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
    supervisor >/dev/null && rm -rf /var/lib/apt/lists/*
RUN printf '[program:sleeper]\\ncommand=/bin/sleep 100000\\n' > /etc/supervisor/conf.d/sleeper.conf
"""

OWNER = "patchtwin-probe-tests"  # not the pipeline's owner: its janitor leaves these alone
CHECKS: TypeAdapter[list[Check]] = TypeAdapter(list[Check])
PASSED, FAILED, ERROR = CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.ERROR


@pytest.fixture(scope="module")
async def docker() -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime(owner=OWNER)
    if not await runtime.image_exists(web_ref("12")):
        pytest.skip(f"{web_ref('12')} is missing: run ./scripts/bootstrap.sh")
    try:
        yield runtime
    finally:
        for twin in await runtime.list_ours():
            await runtime.destroy(twin["name"])
        await runtime.close()


async def _twin(docker: DockerRuntime, *, nginx: bool = True) -> TwinRef:
    twin = await docker.create(f"probe-{uuid.uuid4().hex[:10]}", web_ref("12"), limits=TwinLimits(), ttl_s=900)
    if nginx:
        await _sh(docker, twin, "service nginx start")
    return twin


async def _sh(docker: DockerRuntime, twin: TwinRef, script: str) -> str:
    result = await docker.exec(twin, ["bash", "-c", script], timeout_s=30)
    assert result.exit_code == 0, result.stderr
    return result.stdout.decode()


@pytest.fixture(scope="module")
async def web(docker: DockerRuntime) -> AsyncIterator[TwinRef]:
    """A twin with nginx running, shared by the tests that only look."""
    twin = await _twin(docker)
    yield twin
    await docker.destroy(twin.name)


async def _suite(docker: DockerRuntime, twin: TwinRef, *specs: dict[str, Any], rounds: int = 1,
                 baseline: SuiteResult | None = None) -> SuiteResult:
    checks = unique_names(CHECKS.validate_python(list(specs)))
    return await run_suite(docker, twin, checks, rounds=rounds, baseline=baseline, pause_s=0)


async def _one(docker: DockerRuntime, twin: TwinRef, spec: dict[str, Any]) -> CheckResult:
    return (await _suite(docker, twin, spec)).results[0]


# -- one exec per round ---------------------------------------------------------------------------

TWENTY: list[dict[str, Any]] = [
    {"type": "port", "port": 80}, {"type": "port", "port": 80, "family": "ipv4", "connect": True},
    {"type": "port", "port": 80, "family": "ipv6"}, {"type": "service", "name": "nginx"},
    {"type": "http", "url": "http://127.0.0.1/"},
    {"type": "http", "url": "http://127.0.0.1/nope", "expect_status": 404},
    {"type": "process", "name": "nginx"}, {"type": "process", "cmdline": "nginx: worker", "user": "www-data"},
    {"type": "package", "name": "openssl"}, {"type": "package", "name": "nginx", "version": ">= 1.22"},
    {"type": "package", "name": "apache2", "installed": False},
    {"type": "log", "path": "/var/log/nginx/error.log", "pattern": "emerg|crit"},
    {"type": "command", "run": "nginx -t"}, {"type": "command", "run": "id -u", "stdout_contains": "0"},
    {"type": "file", "path": "/etc/nginx/nginx.conf", "owner": "root"},
    {"type": "file", "path": "/etc/shadow", "mode": "640"}, {"type": "file", "path": "/nonexistent", "exists": False},
    {"type": "performance", "run": "true", "samples": 5},
    {"type": "performance", "url": "http://127.0.0.1/", "samples": 5},
    {"type": "service", "service": "nginx", "name": "nginx at boot", "enabled": True, "state": None},
]


async def test_a_twenty_check_suite_costs_one_exec_per_round(docker: DockerRuntime, web: TwinRef) -> None:
    before = docker.exec_count
    once = await _suite(docker, web, *TWENTY)
    assert docker.exec_count - before == 1
    assert once.execs == 1 and len(once.results) == 20
    assert [r.name for r in once.results if r.status is not PASSED] == []
    assert len({r.type for r in once.results}) == 9  # every family, in that one exec

    before = docker.exec_count
    twice = await _suite(docker, web, *TWENTY, rounds=2)
    assert docker.exec_count - before == 2 == twice.execs
    assert all(r.observations == [PASSED, PASSED] for r in twice.results)


# -- port ------------------------------------------------------------------------------------------


async def test_port_listening_and_not(docker: DockerRuntime, web: TwinRef) -> None:
    up, down, closed = (await _suite(
        docker, web, {"type": "port", "port": 80}, {"type": "port", "port": 8081},
        {"type": "port", "port": 8081, "listening": False, "name": "8081 closed"},
    )).results
    assert up.status is PASSED and "tcp 0.0.0.0:80" in up.evidence["sockets"]
    assert down.status is FAILED and down.evidence["sockets"] == []
    assert closed.status is PASSED


async def test_an_ipv6_only_listener_is_tcp6_not_tcp(docker: DockerRuntime, web: TwinRef) -> None:
    await _sh(docker, web, "setsid perl -MIO::Socket::IP -e '$s = IO::Socket::IP->new(LocalHost => q(::), "
              "LocalPort => 8086, Listen => 5, V6Only => 1) or die $@; sleep 600' >/dev/null 2>&1 &")
    either, v4, v6 = (await _suite(
        docker, web, {"type": "port", "port": 8086, "family": "either", "timeout": 10, "interval": 0.1},
        {"type": "port", "port": 8086, "family": "ipv4"}, {"type": "port", "port": 8086, "family": "ipv6"},
    )).results
    assert either.status is PASSED and either.evidence["sockets"] == ["tcp6 [::]:8086"]
    assert v4.status is FAILED and v4.evidence["sockets"] == []
    assert "nothing listens on tcp port 8086 (ipv4)" in v4.message
    assert v6.status is PASSED


async def test_udp_is_told_from_tcp_and_connect_proves_acceptance(docker: DockerRuntime, web: TwinRef) -> None:
    await _sh(docker, web, "setsid perl -MIO::Socket::IP -e '$s = IO::Socket::IP->new(LocalHost => q(127.0.0.1), "
              "LocalPort => 5353, Proto => q(udp)) or die $@; sleep 600' >/dev/null 2>&1 &")
    udp, tcp, connected = (await _suite(
        docker, web, {"type": "port", "port": 5353, "protocol": "udp", "timeout": 10, "interval": 0.1},
        {"type": "port", "port": 5353}, {"type": "port", "port": 80, "family": "ipv4", "connect": True},
    )).results
    assert udp.status is PASSED and udp.evidence["sockets"] == ["udp 127.0.0.1:5353"]
    assert tcp.status is FAILED
    assert connected.status is PASSED and connected.evidence["connected"] is True
    assert connected.evidence["address"] == "127.0.0.1"


# -- service, http, process -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def supervised(docker: DockerRuntime) -> str:
    if not await docker.image_exists(SUPERVISOR_IMAGE):
        build = await asyncio.create_subprocess_exec(
            "docker", "build", "-q", "-t", SUPERVISOR_IMAGE, "--label", f"io.patchtwin.owner={OWNER}", "-",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(build.communicate(SUPERVISOR_DOCKERFILE.encode()), timeout=300)
        if build.returncode != 0:
            pytest.skip(f"cannot build {SUPERVISOR_IMAGE} (needs the Debian mirror): {output.decode()[-300:]}")
    return SUPERVISOR_IMAGE


async def test_a_supervised_program_is_seen_through_supervisor(docker: DockerRuntime, supervised: str) -> None:
    twin = await docker.create(f"probe-{uuid.uuid4().hex[:10]}", supervised, limits=TwinLimits(), ttl_s=900)
    try:
        await _sh(docker, twin, "supervisord -c /etc/supervisor/supervisord.conf")
        up = await _one(docker, twin, {"type": "service", "name": "sleeper", "enabled": True, "timeout": 15,
                                       "interval": 0.2})
        assert up.status is PASSED, up.message
        assert (up.evidence["manager"], up.evidence["state"], up.evidence["enabled"]) == ("supervisor", "running", True)
        assert "RUNNING" in up.evidence["output"]

        await _sh(docker, twin, "supervisorctl stop sleeper")
        running, stopped = (await _suite(
            docker, twin, {"type": "service", "name": "sleeper"},
            {"type": "service", "service": "sleeper", "name": "sleeper stopped", "state": "stopped"},
        )).results
        assert running.status is FAILED and running.message == "service sleeper is stopped (expected running)"
        assert stopped.status is PASSED and stopped.evidence["manager"] == "supervisor"
    finally:
        await docker.destroy(twin.name)


async def test_service_state_and_enablement_through_the_twins_manager(docker: DockerRuntime, web: TwinRef) -> None:
    running, stopped, enabled, ghost = (await _suite(
        docker, web, {"type": "service", "name": "nginx"},
        {"type": "service", "service": "nginx", "name": "nginx stopped?", "state": "stopped"},
        {"type": "service", "service": "nginx", "name": "nginx at boot", "state": None, "enabled": True},
        {"type": "service", "name": "ghostd"},
    )).results
    assert running.status is PASSED and running.evidence["manager"] == "sysv"
    assert stopped.status is FAILED and stopped.evidence["state"] == "running"
    assert enabled.status is PASSED and enabled.evidence["enabled"] is True  # /etc/rc2.d/S01nginx
    assert ghost.status is FAILED and ghost.evidence["manager"] == "none"


async def test_http_from_inside_a_twin_without_network(docker: DockerRuntime, web: TwinRef) -> None:
    page, missing, regex, post, slow = (await _suite(
        docker, web, {"type": "http", "url": "http://127.0.0.1/", "body_contains": "Welcome to nginx"},
        {"type": "http", "url": "http://127.0.0.1/missing"},
        {"type": "http", "url": "http://127.0.0.1/", "name": "regex", "body_regex": "^<title>Apache"},
        {"type": "http", "url": "http://localhost/", "method": "POST", "headers": {"X-Probe": "1"},
         "body": "a=1", "expect_status": [405, 200]},
        {"type": "http", "url": "http://127.0.0.1/", "name": "too slow", "max_latency_ms": 0.001},
    )).results
    assert page.status is PASSED and page.evidence["status"] == 200 and page.evidence["latency_ms"] > 0
    assert missing.status is FAILED and missing.evidence["status"] == 404
    assert "status 404, expected one of: 200" in missing.message
    assert regex.status is FAILED and "no line of the body matches" in regex.message
    assert post.status is PASSED and post.evidence["status"] == 405
    assert slow.status is FAILED and "> 0.001 ms" in slow.message


async def test_process_by_name_command_line_count_and_user(docker: DockerRuntime, web: TwinRef) -> None:
    named, workers, root_workers, none_wanted = (await _suite(
        docker, web, {"type": "process", "name": "nginx"},
        {"type": "process", "cmdline": "^nginx: worker", "user": "www-data", "max_count": 64},
        {"type": "process", "cmdline": "^nginx: worker", "name": "root workers", "user": "root"},
        {"type": "process", "process": "nginx", "name": "no nginx", "max_count": 0},
    )).results
    assert named.status is PASSED and named.evidence["count"] >= 2
    assert set(named.evidence["users"]) == {"root", "www-data"}
    assert workers.status is PASSED and workers.evidence["users"] == ["www-data"]
    assert root_workers.status is FAILED and root_workers.evidence["count"] == 0
    assert none_wanted.status is FAILED and "expected between 0 and 0" in none_wanted.message


# -- package, command, file ------------------------------------------------------------------------


async def test_package_presence_and_version_ordering(docker: DockerRuntime, web: TwinRef) -> None:
    installed = await _one(docker, web, {"type": "package", "name": "openssl"})
    version = installed.evidence["version"]
    newer, older, exact, absent, wrongly_absent = (await _suite(
        docker, web, {"type": "package", "name": "openssl", "version": f">= {version.split('-')[0]}"},
        {"type": "package", "package": "openssl", "name": "older", "version": f"< {version}"},
        {"type": "package", "package": "openssl", "name": "exact", "version": version},
        {"type": "package", "name": "apache2", "installed": False},
        {"type": "package", "package": "nginx", "name": "nginx absent?", "installed": False},
    )).results
    assert installed.evidence["manager"] == "dpkg" and "~deb12" in version
    assert newer.status is PASSED
    assert older.status is FAILED and older.message == f"openssl is {version}, expected < {version} (dpkg ordering)"
    assert exact.status is PASSED
    assert absent.status is PASSED and absent.evidence["installed"] is False
    assert wrongly_absent.status is FAILED and wrongly_absent.evidence["installed"] is True


async def test_command_exit_and_output(docker: DockerRuntime, web: TwinRef) -> None:
    ok, bad_exit, bad_out = (await _suite(
        docker, web, {"type": "command", "run": "nginx -t", "stderr_regex": "syntax is ok$"},
        {"type": "command", "run": "echo oops >&2; exit 3"},
        {"type": "command", "run": "echo 'hello world'", "stdout_contains": "goodbye"},
    )).results
    assert ok.status is PASSED and "test is successful" in ok.evidence["stderr"]
    assert bad_exit.status is FAILED and bad_exit.evidence["exit_code"] == 3
    assert bad_exit.evidence["stderr"] == "oops\n" and bad_exit.message == "exit 3, expected 0"
    assert bad_out.status is FAILED and bad_out.message == "stdout lacks the expected text"


async def test_file_existence_mode_owner_content_and_digest(docker: DockerRuntime, web: TwinRef) -> None:
    content = "listen 80;\nserver_tokens off;\n"
    await _sh(docker, web, f"printf '{content}' > /tmp/probe.conf; chmod 600 /tmp/probe.conf")
    digest = hashlib.sha256(content.encode()).hexdigest()
    good, wrong_mode, wrong_digest, missing = (await _suite(
        docker, web, {"type": "file", "path": "/tmp/probe.conf", "mode": "0600", "owner": "root",
                      "regex": "^server_tokens off;$", "sha256": digest, "kind": "file"},
        {"type": "file", "path": "/tmp/probe.conf", "name": "mode", "mode": "0644"},
        {"type": "file", "path": "/tmp/probe.conf", "name": "digest", "sha256": "0" * 64},
        {"type": "file", "path": "/tmp/nothing-here"},
    )).results
    assert good.status is PASSED and good.evidence["sha256"] == digest and good.evidence["size"] == len(content)
    assert wrong_mode.status is FAILED and wrong_mode.evidence["mode"] == "600"
    assert "mode 600, expected 644" in wrong_mode.message
    assert wrong_digest.status is FAILED and wrong_digest.evidence["sha256"] == digest
    assert missing.status is FAILED and missing.evidence["exists"] is False


# -- performance -----------------------------------------------------------------------------------


async def test_performance_absolute_and_relative_to_the_baseline(docker: DockerRuntime, web: TwinRef) -> None:
    await _sh(docker, web, "echo 0 > /tmp/delay")
    http = {"type": "performance", "url": "http://127.0.0.1/", "samples": 10, "max_ms": 2000}
    impossible = {"type": "performance", "run": "true", "name": "impossible", "samples": 5, "max_ms": 0.001}
    relative = {"type": "performance", "run": "sleep $(cat /tmp/delay)", "name": "relative", "samples": 5,
                "statistic": "p50", "max_ratio": 2}
    baseline = await _suite(docker, web, http, impossible, relative)
    fast, never, before = baseline.results
    assert fast.status is PASSED and fast.evidence["samples"] == 10
    assert 0 < fast.evidence["p50_ms"] <= fast.evidence["p95_ms"] <= fast.evidence["max_ms"]
    assert never.status is FAILED and "above 0.001 ms" in never.message
    assert before.status is PASSED  # relative limits need a baseline: this is it

    await _sh(docker, web, "echo 0.3 > /tmp/delay")  # the "patch" slows the command by 300 ms
    after = (await _suite(docker, web, http, impossible, relative, baseline=baseline)).results[2]
    assert after.status is FAILED
    assert after.evidence["baseline_ms"] == before.evidence["p50_ms"]
    assert after.evidence["p50_ms"] >= 300 > after.evidence["relative_limit_ms"]


# -- readiness, flakiness, logs since the baseline ---------------------------------------------------


async def test_a_service_up_3s_after_the_patch_passes_with_retries(docker: DockerRuntime) -> None:
    twin = await _twin(docker, nginx=False)
    try:
        await _sh(docker, twin, "setsid bash -c 'sleep 3; service nginx start' >/dev/null 2>&1 &")
        before = docker.exec_count
        suite = await _suite(
            docker, twin,
            {"type": "http", "url": "http://127.0.0.1/", "retries": 100, "timeout": 15, "interval": 0.2,
             "max_interval": 0.4},
            {"type": "command", "run": "true"},
            {"type": "port", "port": 81, "timeout": 2, "interval": 0.3},
        )
        http, steady, never = suite.results
        assert http.status is PASSED and http.attempts > 3
        assert http.time_to_pass_s is not None and 2.5 <= http.time_to_pass_s <= 5.0, http.time_to_pass_s
        assert steady.attempts == 1 and steady.time_to_pass_s is not None and steady.time_to_pass_s < 2.5
        assert never.status is FAILED and never.time_to_pass_s is None and never.attempts >= 2
        # only failing checks go round again, in shared rounds of one exec each
        assert docker.exec_count - before == suite.execs <= 1 + (http.attempts - 1) + (never.attempts - 1)
    finally:
        await docker.destroy(twin.name)


async def test_disagreeing_repeats_make_a_check_flaky_not_passed(docker: DockerRuntime, web: TwinRef) -> None:
    await _sh(docker, web, "rm -f /tmp/flip")
    flip = {"type": "command", "name": "flip", "run": "if [ -e /tmp/flip ]; then exit 1; fi; touch /tmp/flip"}
    suite = await _suite(docker, web, flip, {"type": "command", "run": "true"}, rounds=3)
    flaky, steady = suite.results
    assert flaky.observations == [PASSED, FAILED, FAILED]
    assert flaky.flaky and flaky.status is FAILED
    assert flaky.message.startswith("flaky (passed/failed/failed): exit 1")
    assert [r["status"] for r in flaky.evidence["repeats"]] == ["passed", "failed", "failed"]
    assert not steady.flaky and steady.status is PASSED


async def test_log_counts_only_lines_added_since_the_baseline(docker: DockerRuntime) -> None:
    twin = await _twin(docker)
    try:
        log = "/var/log/nginx/error.log"
        await _sh(docker, twin, f"echo '2026/11/29 01:00:00 [crit] 1#1: before the baseline' >> {log}")
        spec = {"type": "log", "path": "/var/log/nginx/*.log", "pattern": "emerg|crit"}
        baseline = await _suite(docker, twin, spec, rounds=2)
        assert baseline.results[0].status is PASSED
        quiet = await _suite(docker, twin, spec, baseline=baseline)
        assert quiet.results[0].status is PASSED and quiet.results[0].evidence["matches"] == 0

        await _sh(docker, twin, f"echo '2026/11/29 02:00:00 [info] fine' >> {log}; "
                                f"echo '2026/11/29 02:00:01 [crit] 2#2: written by the patch' >> {log}")
        after = (await _suite(docker, twin, spec, baseline=baseline)).results[0]
        assert after.status is FAILED
        assert after.evidence["matches"] == 1
        assert after.evidence["matched"] == ["2026/11/29 02:00:01 [crit] 2#2: written by the patch"]
        scanned = {f["path"]: f for f in after.evidence["files"]}[log]
        assert scanned["from"] > 0 and scanned["size"] > scanned["from"]

        await _sh(docker, twin, f"mv {log} {log}.1; echo '[emerg] after rotation' > {log}")
        rotated = (await _suite(docker, twin, spec, baseline=baseline)).results[0]
        assert rotated.status is FAILED and rotated.evidence["matched"] == ["[emerg] after rotation"]
    finally:
        await docker.destroy(twin.name)


async def test_a_hung_command_is_killed_at_its_own_timeout(docker: DockerRuntime, web: TwinRef) -> None:
    hung = await _one(docker, web, {"type": "command", "run": "sleep 30", "timeout_s": 0.5})
    assert hung.status is FAILED and hung.evidence["exit_code"] == 137
