"""Package version ordering, ported from the package managers so a constraint means what it means
on the platform: Debian's (dpkg's `verrevcmp`) and rpm's (`rpmvercmp` with epoch and release)."""

from __future__ import annotations

import operator
from collections.abc import Callable

_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# -- Debian -------------------------------------------------------------------------------------


def _deb_order(c: str) -> int:
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256 if c else 0


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's lib/dpkg/version.c verrevcmp: non-digit runs by `order`, digit runs numerically."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _deb_order(a[i] if i < len(a) else "")
            bc = _deb_order(b[j] if j < len(b) else "")
            if ac != bc:
                return _sign(ac - bc)
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return _sign(first_diff)
    return 0


def _deb_parse(version: str) -> tuple[int, str, str]:
    version = version.strip()
    epoch = 0
    if ":" in version:
        head, version = version.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    upstream, _, revision = version.rpartition("-")
    if not upstream:
        upstream, revision = revision, ""
    return epoch, upstream, revision


def compare_deb(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian orders two versions (`dpkg --compare-versions`)."""
    ea, ua, ra = _deb_parse(a)
    eb, ub, rb = _deb_parse(b)
    if ea != eb:
        return _sign(ea - eb)
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


# -- rpm ----------------------------------------------------------------------------------------


def rpmvercmp(a: str, b: str) -> int:
    """rpm's rpmio/rpmvercmp.c: alphanumeric segments; `~` sorts before anything, `^` after the end."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not a[i].isalnum() and a[i] not in "~^":
            i += 1
        while j < len(b) and not b[j].isalnum() and b[j] not in "~^":
            j += 1
        one = a[i] if i < len(a) else ""
        two = b[j] if j < len(b) else ""
        if one == "~" or two == "~":
            if one != "~":
                return 1
            if two != "~":
                return -1
            i += 1
            j += 1
            continue
        if one == "^" or two == "^":
            if not one:
                return -1
            if not two:
                return 1
            if one != "^":
                return 1
            if two != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (one and two):
            break
        si, sj = i, j
        isnum = one.isdigit()
        test = str.isdigit if isnum else str.isalpha
        while si < len(a) and a[si].isascii() and test(a[si]):
            si += 1
        while sj < len(b) and b[sj].isascii() and test(b[sj]):
            sj += 1
        seg1, seg2 = a[i:si], b[j:sj]
        if not seg1:
            return -1
        if not seg2:
            return 1 if isnum else -1
        if isnum:
            seg1, seg2 = seg1.lstrip("0"), seg2.lstrip("0")
            if len(seg1) != len(seg2):
                return 1 if len(seg1) > len(seg2) else -1
        if seg1 != seg2:
            return 1 if seg1 > seg2 else -1
        i, j = si, sj
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def _rpm_parse(evr: str) -> tuple[int, str, str | None]:
    evr = evr.strip()
    epoch = 0
    head, sep, rest = evr.partition(":")
    if sep and head.isdigit():
        epoch, evr = int(head), rest
    version, dash, release = evr.rpartition("-")
    if not dash:
        return epoch, evr, None
    return epoch, version, release


def compare_rpm(a: str, b: str) -> int:
    """-1, 0 or 1 for two `[epoch:]version[-release]`; a missing release matches any release."""
    ea, va, ra = _rpm_parse(a)
    eb, vb, rb = _rpm_parse(b)
    if ea != eb:
        return _sign(ea - eb)
    result = rpmvercmp(va, vb)
    if result or ra is None or rb is None:
        return result
    return rpmvercmp(ra, rb)


#: The ordering of each package manager the probe can find in a twin.
ORDERINGS: dict[str, Callable[[str, str], int]] = {"dpkg": compare_deb, "rpm": compare_rpm}


def satisfies(manager: str, installed: str, op: str, wanted: str) -> bool:
    """Whether `installed <op> wanted` under the manager's ordering (KeyError: no ordering known)."""
    return _OPS[op](ORDERINGS[manager](installed, wanted), 0)
