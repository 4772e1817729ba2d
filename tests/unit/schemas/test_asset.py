"""The asset model: the contract's minimal asset still means what it did; the rest describes production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.asset import Asset, HttpReady, PortReady, ServiceSpec

MINIMAL = {"id": "web-01", "platform": {"os": "debian", "version": "12"}, "services": ["nginx"]}


def test_contract_minimal_asset_is_accepted_and_builds_nothing() -> None:
    asset = Asset.model_validate(MINIMAL)
    assert asset.service_specs == [ServiceSpec(name="nginx", manager="auto")]
    assert asset.packages == {} and not asset.builds_image


def test_full_asset_describes_production() -> None:
    asset = Asset.model_validate({
        **MINIMAL,
        "platform": {"os": "Debian", "version": "12", "arch": "amd64"},
        "packages": {"nginx": "1.22.1-9+deb12u1", "openssl": "3.0.15-1~deb12u1"},
        "services": ["nginx", {"name": "worker", "command": "python3 -m http.server 8081"}],
        "files": [{"path": "/etc/motd", "content": "hi\n", "mode": "0600"}],
        "environment": {"APP_ENV": "prod"},
        "ports": [{"port": 80}, {"port": 53, "protocol": "udp"}],
        "readiness": [{"type": "port", "port": 80}, {"type": "http", "url": "http://127.0.0.1/"}],
    })
    assert asset.platform.os == "debian"
    assert asset.builds_image
    assert [s.manager for s in asset.service_specs] == ["auto", "command"]
    assert asset.files[0].mode == 0o600
    assert asset.readiness == [PortReady(port=80), HttpReady(url="http://127.0.0.1/")]


def test_explicit_image_is_used_as_is_so_nothing_is_built() -> None:
    asset = Asset.model_validate({**MINIMAL, "image": "prod/web:7", "packages": {"nginx": "1.0"}})
    assert not asset.builds_image


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("packages", {"nginx; rm -rf /": "1"}, "not a package name"),
        ("packages", {"nginx": "1.0 && reboot"}, "not a version"),
        ("services", ["ng inx"], "not a service name"),
        ("services", [{"name": "w", "manager": "command"}], "needs `command`"),
        ("files", [{"path": "/etc/../root/x", "content": ""}], "without '..'"),
        ("files", [{"path": "/etc/x", "content": "", "mode": "rwx"}], "not an octal mode"),
        ("environment", {"1BAD": "x"}, "not an environment variable name"),
    ],
)
def test_bad_asset_fields_are_refused_with_a_reason(field: str, value: object, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Asset.model_validate({**MINIMAL, field: value})
