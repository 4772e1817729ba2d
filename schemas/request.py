"""What a client sends: the asset to replicate, the patch to try, the checks to run."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.asset import Asset, Platform, Relaxations, Resources

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


#: Debian package names (policy 5.6.1), optionally with `:arch`; versions (policy 5.6.12).
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
PACKAGE_VERSION = re.compile(r"^([0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Artifact(BaseModel):
    """A file copied into the twin before the script runs: inline (base64) or from a URL
    that the executor (outside the twin) fetches. With `sha256`, the content must match."""

    model_config = ConfigDict(extra="ignore")

    path: str = Field(min_length=2, max_length=1024, description="absolute path in the twin")
    content_base64: str | None = Field(default=None, max_length=64 * 1024 * 1024)
    url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://[^\s]+$")
    mode: int = Field(default=0o644, ge=0, le=0o7777, description='permissions: 420, "0644" or "644"')
    sha256: str | None = Field(default=None, description="expected SHA-256 of the content, hex")

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        parts = path.split("/")
        if not path.startswith("/") or path.endswith("/") or ".." in parts or "." in parts \
                or posixpath.normpath(path) != path or "\0" in path:
            raise ValueError(f"not a normalised absolute file path: {path!r}")
        return path

    @field_validator("mode", mode="before")
    @classmethod
    def _octal(cls, mode: object) -> object:
        if isinstance(mode, str):
            if not re.fullmatch(r"0?[0-7]{3,4}", mode):
                raise ValueError(f"not an octal file mode: {mode!r}")
            return int(mode, 8)
        return mode

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex(cls, digest: object) -> object:
        if isinstance(digest, str):
            digest = digest.lower()
            if not SHA256.match(digest):
                raise ValueError("sha256 is 64 hex digits")
        return digest

    @field_validator("content_base64")
    @classmethod
    def _base64(cls, content: str | None) -> str | None:
        if content is not None:
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"content_base64 is not base64: {exc}") from exc
        return content

    @model_validator(mode="after")
    def _one_source(self) -> Artifact:
        if (self.content_base64 is None) == (self.url is None):
            raise ValueError(f"artifact {self.path}: give exactly one of content_base64 and url")
        return self


class Patch(BaseModel):
    """What to change in the twin, in this order: artifacts copied in, packages installed
    (fetched outside the twin; the twin never gets network), the script run."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    script: str = Field(default="", max_length=256 * 1024)
    interpreter: str = Field(default="/bin/sh", pattern=r"^/[A-Za-z0-9_./-]+$")
    timeout_s: float = Field(default=600, gt=0, le=24 * 3600)
    user: str | None = Field(default=None, pattern=r"^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})(:[a-z0-9_-]{1,32})?$",
                             description="run the script as this user (name or uid[:group]); root by default")
    packages: dict[str, str] = Field(default_factory=dict, max_length=200,
                                     description="package name → exact version to install or upgrade to")
    artifacts: list[Artifact] = Field(default_factory=list, max_length=64)

    @field_validator("packages")
    @classmethod
    def _package_specs(cls, packages: dict[str, str]) -> dict[str, str]:
        for name, version in packages.items():
            if not PACKAGE_NAME.match(name):
                raise ValueError(f"not a package name: {name!r}")
            if not isinstance(version, str) or not PACKAGE_VERSION.match(version):
                raise ValueError(f"package {name}: not a version: {version!r}")
        return packages

    @model_validator(mode="after")
    def _something_to_do(self) -> Patch:
        if not self.script.strip() and not self.packages and not self.artifacts:
            raise ValueError("a patch needs a script, packages or artifacts")
        paths = [a.path for a in self.artifacts]
        if len(set(paths)) != len(paths):
            raise ValueError("two artifacts have the same path")
        return self


__all__ = ["RUN_ID_PATTERN", "Artifact", "Asset", "Patch", "Platform", "Relaxations", "Resources"]
