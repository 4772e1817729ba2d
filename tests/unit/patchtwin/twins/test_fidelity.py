"""Fidelity: every declared fact is looked up in the snapshot; the score is the share met."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from patchtwin.twins.fidelity import measure
from schemas.asset import Asset
from schemas.state import ServiceState, Socket, SystemState

ASSET = Asset.model_validate({
    "id": "web-01", "platform": {"os": "debian", "version": "12"},
    "packages": {"nginx": "1.22.1-9", "openssl": "3.0.15-1"},
    "services": ["nginx"],
    "files": [{"path": "/etc/motd", "content": "hello\n"}],
    "ports": [{"port": 80}],
})


def _twin(**overrides: object) -> SystemState:
    fields: dict[str, object] = {
        "packages": {"nginx": "1.22.1-9", "openssl": "3.0.15-1", "libc6": "2.36"},
        "services": {"nginx": ServiceState(state="running", manager="sysv")},
        "files": {"/etc/motd": hashlib.sha256(b"hello\n").hexdigest()},
        "listening": [Socket(proto="tcp6", address="::", port=80)],
    }
    return SystemState(taken_at=datetime.now(UTC), **{**fields, **overrides})  # type: ignore[arg-type]


def test_twin_meeting_every_declaration_scores_100() -> None:
    fidelity = measure(ASSET, _twin())
    assert (fidelity.score, fidelity.declared, fidelity.matched, fidelity.mismatches) == (100, 5, 5, [])


def test_each_unmet_declaration_is_named_and_lowers_the_score() -> None:
    fidelity = measure(ASSET, _twin(
        packages={"nginx": "1.22.1-9"},
        services={"nginx": ServiceState(state="failed", manager="sysv")},
        files={}, listening=[],
    ))
    assert fidelity.score == 20.0 and fidelity.matched == 1
    assert [(m.kind, m.name, m.expected, m.actual) for m in fidelity.mismatches] == [
        ("package", "openssl", "3.0.15-1", "not installed"),
        ("service", "nginx", "running", "failed"),
        ("file", "/etc/motd", "sha256:" + hashlib.sha256(b"hello\n").hexdigest()[:12], "absent"),
        ("port", "tcp/80", "listening", "not listening"),
    ]
    assert fidelity.summary().startswith("20% (1/5); differs: package openssl")


def test_asset_declaring_nothing_is_trivially_faithful() -> None:
    bare = Asset.model_validate({"id": "x", "platform": {"os": "debian", "version": "12"}})
    assert measure(bare, _twin()).score == 100 and measure(bare, _twin()).declared == 0
