"""Make a twin like the asset and measure it before anything changes."""

from __future__ import annotations

import asyncio
import logging

from patchtwin.checks import run_suite
from patchtwin.core.stage import now
from patchtwin.exceptions import ImageUnavailable, TransientError, TwinLost
from patchtwin.settings import Settings
from patchtwin.twins import DEFAULT_CAPABILITIES, Hardening, TwinLimits, TwinRuntime, snapshot
from patchtwin.twins.asset_images import AssetImage, ensure_asset_image
from patchtwin.twins.fidelity import measure
from patchtwin.twins.images import resolve_base
from patchtwin.twins.readiness import wait_ready
from schemas import RunContext, StageSpan, TwinReady, TwinRequested
from schemas.events import TwinRef
from schemas.state import Provisioning, SystemState

log = logging.getLogger("patchtwin.provisioner")


async def provision(request: TwinRequested, runtime: TwinRuntime, settings: Settings) -> TwinReady:
    """base image → asset image → twin → readiness → baseline → snapshot → fidelity."""
    started = now()
    asset = request.asset
    base = await resolve_twin_image(request, runtime, settings)
    image = AssetImage(base, built=False, build_s=0.0)
    if asset.builds_image:
        image = await ensure_asset_image(asset, base, runtime, settings.state_dir,
                                         timeout_s=settings.asset_build_timeout_s)
    twin = await runtime.create(
        request.run_id, image.ref, limits=limits_for(request, settings), ttl_s=request.ttl_s,
        hardening=hardening_for(request, settings), asset=request.asset,
    )
    ready = await wait_ready(runtime, twin, asset, settings.readiness_timeout_s)
    # Both only read the twin: run side by side (the snapshot's exec overlaps the probe rounds).
    # (gather, not a TaskGroup: the first error propagates as itself, not in an ExceptionGroup)
    probing = asyncio.ensure_future(run_suite(runtime, twin, request.checks, rounds=request.repeats))
    snapshotting = asyncio.ensure_future(_snapshot(runtime, twin, request, settings, ready.managers))
    try:
        baseline, state = await asyncio.gather(probing, snapshotting)
    except BaseException:
        probing.cancel()
        snapshotting.cancel()
        raise
    return TwinReady(
        run_id=request.run_id,
        context=RunContext(
            request=request,
            twin=twin,
            baseline=baseline,
            timeline=[StageSpan(stage="provision", started_at=started, finished_at=now())],
            state=state,
            fidelity=measure(asset, state) if state is not None else None,
            provisioning=Provisioning(base_image=base, image=image.ref, image_built=image.built,
                                      build_s=image.build_s, time_to_ready_s=ready.seconds,
                                      managers=ready.managers),
        ),
    )


async def _snapshot(runtime: TwinRuntime, twin: TwinRef, request: TwinRequested, settings: Settings,
                    managers: dict[str, str]) -> SystemState | None:
    """The baseline system state; a twin that cannot be snapshotted is still tested, without it."""
    try:
        return await snapshot.take(runtime, twin, request.asset, roots=settings.snapshot_roots,
                                   max_files=settings.snapshot_max_files, managers=managers,
                                   timeout_s=settings.snapshot_timeout_s)
    except (TwinLost, TransientError):
        raise
    except Exception:
        log.warning("run %s: no baseline snapshot", request.run_id, exc_info=True)
        return None


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
