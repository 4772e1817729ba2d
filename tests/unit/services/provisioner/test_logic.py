"""A twin is hardened unless the asset asks otherwise, and every loosening is named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from patchtwin.settings import Settings
from patchtwin.twins import DEFAULT_CAPABILITIES
from schemas import TwinRequested
from services.provisioner.logic import hardening_for


def _request(isolation: dict[str, Any] | None = None) -> TwinRequested:
    asset: dict[str, Any] = {"id": "web-01", "platform": {"os": "debian", "version": "12"}}
    if isolation is not None:
        asset["isolation"] = isolation
    return TwinRequested.model_validate({"asset": asset, "patch": {"id": "P", "script": "true"}})


def test_default_asset_gets_the_hardened_twin_with_nothing_relaxed() -> None:
    hardening = hardening_for(_request(), Settings(twin_runtime="runsc", twin_tmpfs_mb=8))

    assert hardening.network == "none"
    assert hardening.capabilities == DEFAULT_CAPABILITIES
    assert hardening.no_new_privileges
    assert hardening.relaxed == ()
    assert (hardening.runtime, hardening.tmpfs_mb) == ("runsc", 8)


def test_each_relaxation_is_applied_and_named() -> None:
    request = _request({"network": "internal", "capabilities": ["SYS_PTRACE", "CHOWN"],
                        "no_new_privileges": False})

    hardening = hardening_for(request, Settings())

    assert hardening.network == "internal"
    assert hardening.capabilities == (*DEFAULT_CAPABILITIES, "SYS_PTRACE")
    assert not hardening.no_new_privileges
    assert hardening.relaxed == ("network internal", "capability SYS_PTRACE", "no-new-privileges off")


@pytest.mark.parametrize("isolation", [
    {"capabilities": ["SYS_ADMIN"]},
    {"capabilities": ["DAC_READ_SEARCH"]},
    {"network": "bridge"},
    {"network": "host"},
    {"privileged": True},
])
def test_relaxations_that_reach_past_the_twin_are_refused(isolation: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _request(isolation)
