"""The patch part of a request: what is accepted, and the error each bad field gets."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import Artifact, Patch


def errors(**patch: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Patch.model_validate({"id": "P-1", **patch})
    return str(caught.value)


def test_a_script_alone_is_a_patch_as_before() -> None:
    patch = Patch.model_validate({"id": "P-1", "script": "echo hi"})

    assert (patch.interpreter, patch.timeout_s, patch.user) == ("/bin/sh", 600, None)
    assert patch.packages == {} and patch.artifacts == []


def test_packages_or_artifacts_without_a_script_are_a_patch() -> None:
    assert Patch.model_validate({"id": "P-1", "packages": {"hello": "2.10-3"}}).script == ""
    inline = {"path": "/etc/motd", "content_base64": base64.b64encode(b"hi").decode()}
    assert Patch.model_validate({"id": "P-1", "artifacts": [inline]}).artifacts[0].mode == 0o644


def test_a_patch_with_nothing_to_do_is_refused() -> None:
    assert "needs a script, packages or artifacts" in errors(script="  \n")


@pytest.mark.parametrize(("packages", "message"), [
    ({"Hello World": "1.0"}, "not a package name"),
    ({"hello": "1.0; rm -rf /"}, "not a version"),
    ({"hello": ""}, "not a version"),
])
def test_bad_package_specs_are_named(packages: dict[str, str], message: str) -> None:
    assert message in errors(packages=packages)


@pytest.mark.parametrize("user", ["root;rm", "Root", "-x", "a" * 40])
def test_bad_user_names_are_refused(user: str) -> None:
    assert "user" in errors(script="id", user=user)


@pytest.mark.parametrize("user", ["nobody", "www-data", "33", "1000:adm"])
def test_user_names_and_uids_are_accepted(user: str) -> None:
    assert Patch.model_validate({"id": "P-1", "script": "id", "user": user}).user == user


@pytest.mark.parametrize(("mode", "expected"), [("0755", 0o755), ("644", 0o644), (0o600, 0o600), ("4755", 0o4755)])
def test_artifact_modes_are_octal_strings_or_numbers(mode: object, expected: int) -> None:
    artifact = Artifact.model_validate({"path": "/usr/local/bin/x", "url": "http://h/x", "mode": mode})

    assert artifact.mode == expected


@pytest.mark.parametrize(("artifact", "message"), [
    ({"path": "relative/x", "url": "http://h/x"}, "not a normalised absolute file path"),
    ({"path": "/etc/../x", "url": "http://h/x"}, "not a normalised absolute file path"),
    ({"path": "/etc/", "url": "http://h/x"}, "not a normalised absolute file path"),
    ({"path": "/x"}, "exactly one of content_base64 and url"),
    ({"path": "/x", "url": "http://h/x", "content_base64": "aGk="}, "exactly one of content_base64 and url"),
    ({"path": "/x", "content_base64": "not base64!"}, "not base64"),
    ({"path": "/x", "url": "ftp://h/x"}, "url"),
    ({"path": "/x", "url": "http://h/x", "mode": "0999"}, "not an octal file mode"),
    ({"path": "/x", "url": "http://h/x", "sha256": "abc"}, "64 hex digits"),
])
def test_bad_artifacts_are_named(artifact: dict[str, Any], message: str) -> None:
    assert message in errors(artifacts=[artifact])


def test_two_artifacts_on_one_path_are_refused() -> None:
    same = {"path": "/x", "content_base64": "aGk="}
    assert "same path" in errors(artifacts=[same, same])
