"""Version ordering as the package managers order: Debian's (dpkg) and rpm's (rpmvercmp)."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest

from patchtwin.checks.versions import compare_deb, compare_rpm, rpmvercmp, satisfies

# (a, b, expected sign of a vs b), after dpkg's own test suite (lib/dpkg/t/t-version.c) and
# Debian practice: ~ sorts before the end, a missing revision equals "0", epochs win.
DEB_PAIRS = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),
    ("0:1.0", "1.0", 0),
    ("1.0", "1.1", -1),
    ("1.10", "1.9", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~~a", -1),
    ("1.0~~a", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0+b1", -1),
    ("1.0+b1", "1.0.1", -1),
    ("1:0.1", "2.0", 1),
    ("2:1.0", "10:0.1", -1),
    ("1.0-1", "1.0-2", -1),
    ("1.0-1~deb12u1", "1.0-1", -1),
    ("3.0.11-1~deb12u2", "3.0.11-1~deb12u1", 1),
    ("3.0.11-1~deb12u2", "3.0.9-1", 1),
    ("3.0.11", "3.0.11-1~deb12u2", -1),
    ("1.2.3-1ubuntu0.1", "1.2.3-1", 1),
    ("00001.0", "1.0", 0),
    ("1.0-a", "1.0-1", 1),
]

# From rpm's own test suite (tests/rpmvercmp.at).
RPM_PAIRS = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1), ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1),
    ("2.0.1a", "2.0.1", 1), ("5.5p1", "5.5p2", -1), ("5.5p10", "5.5p1", 1), ("10xyz", "10.1xyz", -1),
    ("xyz10", "xyz10.1", -1), ("xyz.4", "8", -1), ("8", "xyz.4", 1), ("xyz.4", "2", -1),
    ("5.5p2", "5.6p1", -1), ("6.0.rc1", "6.0", 1), ("10b2", "10a1", 1), ("10a2", "10b2", -1),
    ("1.0a", "1.0aa", -1), ("10.0001", "10.1", 0), ("10.0001", "10.0039", -1), ("4.999.9", "5.0", -1),
    ("20101121", "20101122", -1), ("2_0", "2.0", 0), ("a+", "a_", 0), ("+a", "_a", 0), ("_+", "_", 0),
    ("1.0~rc1", "1.0", -1), ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0^", "1.0", 1), ("1.0^git1", "1.0", 1), ("1.0^git1", "1.0^git2", -1), ("1.0^git1", "1.01", -1),
    ("1.0^20160101", "1.0.1", -1), ("1.0^20160102", "1.0^20160101^git1", 1), ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0^git1", "1.0^git1~pre", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), DEB_PAIRS)
def test_debian_ordering(a: str, b: str, expected: int) -> None:
    assert compare_deb(a, b) == expected
    assert compare_deb(b, a) == -expected


@pytest.mark.parametrize(("a", "b", "expected"), RPM_PAIRS)
def test_rpmvercmp(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert rpmvercmp(b, a) == -expected


def test_rpm_epoch_and_release() -> None:
    assert compare_rpm("1:1.0-1.el9", "2.0-1.el9") == 1
    assert compare_rpm("3.0.7-24.el9", "3.0.7-6.el9") == 1
    assert compare_rpm("3.0.7-24.el9", "3.0.7") == 0  # no release asked: any release matches
    assert compare_rpm("0:3.0.7-1", "3.0.7-1") == 0


def test_satisfies_uses_the_managers_ordering() -> None:
    # the same pair orders differently: `.rc1` is newer in rpm, `~rc1` older in dpkg
    assert satisfies("rpm", "6.0.rc1", ">", "6.0")
    assert satisfies("dpkg", "6.0~rc1", "<", "6.0")
    assert satisfies("dpkg", "3.0.11-1~deb12u2", ">=", "3.0.11")
    assert not satisfies("dpkg", "3.0.11-1~deb12u2", "==", "3.0.11")
    with pytest.raises(KeyError):
        satisfies("apk", "1.0", "<", "2.0")


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg, the reference implementation")
def test_debian_ordering_agrees_with_dpkg_itself() -> None:
    versions = ["1.0", "1.0-1", "1.0~rc1", "1:0.9", "1.0+b1", "1.0a", "1.0.0", "1.00", "1.0-1~deb12u1",
                "2.0~~", "2.0~", "0.9.9-10", "0.9.9-9", "1.0-1.1", "1.0-1+b1"]
    for a, b in itertools.combinations(versions, 2):
        op = {-1: "lt", 0: "eq", 1: "gt"}[compare_deb(a, b)]  # exactly one holds: dpkg must affirm ours
        assert subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0, \
            f"dpkg disagrees: {a} {op} {b}"
