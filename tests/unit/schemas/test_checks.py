"""Check specs: the contract's spellings hold, defaults are sensible, bad specs get coded errors
that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from patchtwin.core.bus import Undecodable, validate_event
from schemas import Code, TwinRequested
from schemas.checks import CHECK_FAMILIES, PackageCheck, ProcessCheck, ServiceCheck
from tests.contract import TWIN_REQUESTED


def _with_checks(*checks: dict[str, Any]) -> dict[str, Any]:
    return {**TWIN_REQUESTED, "checks": list(checks)}


def _errors(*checks: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Undecodable) as caught:
        validate_event(_with_checks(*checks), TwinRequested)
    assert caught.value.code is Code.INVALID_REQUEST
    return {e["loc"]: e["msg"] for e in caught.value.errors}


def test_the_contract_suite_gets_readable_unique_names() -> None:
    request = TwinRequested.model_validate(TWIN_REQUESTED)
    assert [c.name for c in request.checks] == [
        "port 80/tcp", "service nginx", "http GET http://127.0.0.1/", "process nginx",
        "package openssl", "log /var/log/nginx/error.log", "command nginx -t",
    ]


def test_name_is_the_subject_of_service_process_and_package_checks() -> None:
    request = TwinRequested.model_validate(TWIN_REQUESTED)
    service, process, package = request.checks[1], request.checks[3], request.checks[4]
    assert isinstance(service, ServiceCheck) and service.service == "nginx"
    assert isinstance(process, ProcessCheck) and process.process == "nginx"
    assert isinstance(package, PackageCheck) and package.package == "openssl"


def test_every_family_is_accepted_with_its_options() -> None:
    request = TwinRequested.model_validate(_with_checks(
        {"type": "port", "port": 53, "protocol": "udp", "family": "ipv6"},
        {"type": "port", "port": 80, "family": "either", "connect": True},
        {"type": "service", "name": "nginx", "enabled": True},
        {"type": "http", "url": "http://[::1]:8080/x", "method": "POST", "headers": {"X-A": "1"},
         "body": "{}", "expect_status": [200, 201], "body_regex": "ok|fine", "max_latency_ms": 50},
        {"type": "process", "cmdline": "nginx: worker", "min_count": 1, "max_count": 8, "user": "www-data"},
        {"type": "package", "name": "openssl", "version": ">= 3.0.11-1~deb12u2"},
        {"type": "log", "path": "/var/log/*.log", "pattern": "crit", "max_count": 2},
        {"type": "command", "run": "true", "stdout_regex": "^$", "stderr_contains": ""},
        {"type": "file", "path": "/etc/passwd", "mode": "0644", "owner": "root", "sha256": "a" * 64},
        {"type": "performance", "url": "http://127.0.0.1/", "max_ratio": 1.5},
        {"type": "command", "name": "slow start", "run": "true", "retries": 5, "interval": 0.5, "timeout": 10},
    ))
    assert {c.type for c in request.checks} == set(CHECK_FAMILIES)
    perf = request.checks[9]
    assert perf.type == "performance" and perf.samples == 50 and perf.statistic == "p95"


@pytest.mark.parametrize(
    ("check", "loc", "says"),
    [
        ({"type": "port", "port": 0}, "checks.0.port.port", "greater than or equal to 1"),
        ({"type": "port", "port": 53, "protocol": "udp", "connect": True}, "checks.0.port", "`connect` needs"),
        ({"type": "service"}, "checks.0.service.service", "needs the service's `name`"),
        ({"type": "service", "name": "a;b"}, "checks.0.service.service", "not a service name"),
        ({"type": "http", "url": "ftp://x/"}, "checks.0.http.url", "should match pattern"),
        ({"type": "http", "url": "http://x/", "expect_status": 99}, "checks.0.http.expect_status", "not an HTTP"),
        ({"type": "http", "url": "http://x/", "headers": {"A": "b\r\nEvil: 1"}}, "checks.0.http.headers",
         "line break"),
        ({"type": "http", "url": "http://x/", "body_regex": "("}, "checks.0.http.body_regex",
         "not a valid regular expression"),
        ({"type": "process"}, "checks.0.process", "`name` or a `cmdline`"),
        ({"type": "process", "name": "x", "min_count": 3, "max_count": 1}, "checks.0.process",
         "`min_count` (3) is above `max_count` (1)"),
        ({"type": "package", "name": "openssl", "version": "=> 3"}, "checks.0.package.version",
         "not a version constraint"),
        ({"type": "package", "name": "openssl", "version": "3", "installed": False}, "checks.0.package",
         "cannot go with `installed: false`"),
        ({"type": "log", "path": "relative.log", "pattern": "x"}, "checks.0.log.path", "should match pattern"),
        ({"type": "command", "run": ""}, "checks.0.command.run", "at least 1 character"),
        ({"type": "command", "run": "true", "interval": 0}, "checks.0.command.interval", "greater than 0"),
        ({"type": "file", "path": "/x", "mode": "999"}, "checks.0.file.mode", "should match pattern"),
        ({"type": "file", "path": "/x", "exists": False, "owner": "root"}, "checks.0.file", "cannot go with owner"),
        ({"type": "performance", "url": "http://x/", "run": "true"}, "checks.0.performance", "exactly one of"),
        ({"type": "performance", "run": "true", "samples": 1000, "timeout_s": 10}, "checks.0.performance",
         "at most 600s"),
        ({"type": "bogus"}, "checks.0", "does not match any of the expected tags"),
    ],
)
def test_a_bad_spec_is_refused_with_the_field_path(check: dict[str, Any], loc: str, says: str) -> None:
    errors = _errors(check)
    assert loc in errors, errors
    assert says in errors[loc]


def test_two_checks_with_one_name_are_refused() -> None:
    errors = _errors({"type": "port", "port": 80}, {"type": "port", "port": 80})
    assert "both named 'port 80/tcp'" in errors["checks"]


def test_version_constraints_are_normalised() -> None:
    assert PackageCheck(package="a", version="3.0").constraint() == ("==", "3.0")
    assert PackageCheck(package="a", version=">> 1:2.0-1").constraint() == (">", "1:2.0-1")
    assert PackageCheck(package="a", version="<=1.2~rc1").constraint() == ("<=", "1.2~rc1")


def test_readiness_defaults_never_retry_and_a_timeout_alone_retries_until_it() -> None:
    request = TwinRequested.model_validate(_with_checks(
        {"type": "port", "port": 80}, {"type": "port", "port": 81, "timeout": 5},
        {"type": "port", "port": 82, "retries": 3},
    ))
    assert [c.max_retries() for c in request.checks] == [0, None, 3]
