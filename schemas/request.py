"""What a client sends: the asset to replicate, the patch to try, the checks to run."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.asset import Asset, Platform, Relaxations, Resources

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


class Patch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    script: str = Field(min_length=1, max_length=256 * 1024)
    interpreter: str = Field(default="/bin/sh", pattern=r"^/[A-Za-z0-9_./-]+$")
    timeout_s: float = Field(default=600, gt=0, le=24 * 3600)


__all__ = ["RUN_ID_PATTERN", "Asset", "Patch", "Platform", "Relaxations", "Resources"]
