"""Make a twin like the asset and measure it before anything changes."""

from __future__ import annotations

import shlex

from patchtwin.checks import run_suite
from patchtwin.exceptions import ImageUnavailable, TwinNotReady
from patchtwin.platforms import resolve_base
from patchtwin.runtime import DEFAULT_CAPABILITIES, Hardening, TwinLimits, TwinRuntime
from patchtwin.settings import Settings
from patchtwin.stage import now
from schemas import RunContext, StageSpan, TwinReady, TwinRequested
from schemas.events import TwinRef


async def provision(request: TwinRequested, runtime: TwinRuntime, settings: Settings) -> TwinReady:
    started = now()
    image = await resolve_twin_image(request, runtime, settings)
    twin = await runtime.create(
        request.run_id, image, limits=limits_for(request, settings), ttl_s=request.ttl_s,
        hardening=hardening_for(request, settings), asset=request.asset,
    )
    await start_services(runtime, twin, [s.name for s in request.asset.service_specs], settings.readiness_timeout_s)
    baseline = await run_suite(runtime, twin, request.checks, rounds=request.repeats)
    return TwinReady(
        run_id=request.run_id,
        context=RunContext(
            request=request,
            twin=twin,
            baseline=baseline,
            timeline=[StageSpan(stage="provision", started_at=started, finished_at=now())],
        ),
    )


async def resolve_twin_image(request: TwinRequested, runtime: TwinRuntime, settings: Settings) -> str:
    """The asset's explicit image (which must exist here), else its platform's base image."""
    asset = request.asset
    if asset.image:
        if not await runtime.image_exists(asset.image):
            raise ImageUnavailable(
                f"image {asset.image!r} is not on this Docker engine: `docker load` or pull it there, "
                "or leave asset.image out to use the platform's image"
            )
        return asset.image
    return await resolve_base(asset.platform, runtime, settings.state_dir, build=settings.build_missing_bases,
                              pull_timeout_s=settings.image_pull_timeout_s)


def limits_for(request: TwinRequested, settings: Settings) -> TwinLimits:
    resources = request.asset.resources
    if resources is None:
        return TwinLimits(settings.twin_cpus, settings.twin_memory_mb, settings.twin_pids)
    return TwinLimits(resources.cpus, resources.memory_mb, resources.pids)


_START_AND_WAIT = r"""
deadline=$(( $(date +%s) + $1 )); shift
for s in "$@"; do service "$s" start >/dev/null 2>&1 || /etc/init.d/"$s" start >/dev/null 2>&1; done
while :; do
  missing=""
  for s in "$@"; do service "$s" status >/dev/null 2>&1 || missing="$missing $s"; done
  [ -z "$missing" ] && exit 0
  [ "$(date +%s)" -ge "$deadline" ] && { echo "not running:$missing"; exit 1; }
  sleep 0.2
done
"""


def hardening_for(request: TwinRequested, settings: Settings) -> Hardening:
    """The hardened default, loosened only where the asset asks; each loosening is named."""
    relax = request.asset.isolation
    extra = [c for c in (relax.capabilities if relax else []) if c not in DEFAULT_CAPABILITIES]
    relaxed = [f"capability {c}" for c in extra]
    if relax is not None and relax.network == "internal":
        relaxed.insert(0, "network internal")
    if relax is not None and not relax.no_new_privileges:
        relaxed.append("no-new-privileges off")
    return Hardening(
        network=relax.network if relax else "none",
        capabilities=(*DEFAULT_CAPABILITIES, *extra),
        no_new_privileges=relax.no_new_privileges if relax else True,
        runtime=settings.twin_runtime,
        nofile=settings.twin_nofile,
        fsize_mb=settings.twin_fsize_mb,
        tmpfs_mb=settings.twin_tmpfs_mb,
        log_max_mb=settings.twin_log_max_mb,
        relaxed=tuple(relaxed),
    )


async def start_services(
    runtime: TwinRuntime, twin: TwinRef, services: list[str], timeout_s: float
) -> None:
    """Starts the asset's services and waits until each reports running (one exec)."""
    if not services:
        return
    argv = ["bash", "-c", _START_AND_WAIT, "start", str(int(timeout_s)), *services]
    result = await runtime.exec(twin, argv, timeout_s=timeout_s + 10)
    if result.exit_code != 0:
        missing = result.stdout.decode(errors="replace").strip() or "services did not start"
        raise TwinNotReady(
            f"twin not ready after {timeout_s:g}s: {missing}",
            details={"services": services, "output": shlex.quote(missing)[:500]},
        )
