"""Readiness: start the asset's services and wait, in one exec, until they run, the declared
ports listen and the readiness URLs answer; record the time it took, or what was missing."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from importlib import resources

from patchtwin.exceptions import TwinNotReady
from patchtwin.twins import TwinRuntime
from patchtwin.twins.service_states import decode_b64, service_state
from schemas.asset import Asset, HttpReady, PortReady
from schemas.events import TwinRef
from schemas.state import ServiceState

SERVICES_LIBRARY = resources.files("patchtwin.twins").joinpath("services.sh").read_text()
READINESS_LIBRARY = resources.files("patchtwin.twins").joinpath("readiness.sh").read_text()


@dataclass
class Readiness:
    ready: bool
    seconds: float
    managers: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceState] = field(default_factory=dict)
    missing: str = ""


def conditions(asset: Asset) -> list[str]:
    """The readiness program's arguments: services, declared ports, readiness conditions."""
    items = [
        f"svc:{s.name}:{s.manager}:{base64.b64encode((s.command or '').encode()).decode()}"
        for s in asset.service_specs
    ]
    items += [f"port:{p.port}:{p.protocol}" for p in asset.ports]
    for condition in asset.readiness:
        match condition:
            case PortReady():
                items.append(f"port:{condition.port}:tcp")
            case HttpReady():
                items.append(f"http:{base64.b64encode(condition.url.encode()).decode()}:{condition.expect_status}")
    return items


def parse(stdout: str) -> Readiness:
    result = Readiness(ready=False, seconds=0.0)
    for line in stdout.splitlines():
        tag, *fields = line.split("\t")
        if tag == "mgr" and len(fields) == 2:
            result.managers[fields[0]] = fields[1]
        elif tag == "ready" and fields:
            result.ready, result.seconds = True, int(fields[0]) / 1000
        elif tag == "missing" and fields:
            result.missing = decode_b64(fields[0])
        elif tag == "svc" and len(fields) == 4:
            name, manager, code, out = fields
            result.services[name] = service_state(manager, int(code) if code.isdigit() else 4, decode_b64(out))
    return result


async def wait_ready(runtime: TwinRuntime, twin: TwinRef, asset: Asset, timeout_s: float) -> Readiness:
    """Starts the services and polls until all conditions hold; TWIN_NOT_READY names what did not."""
    items = conditions(asset)
    if not items:
        return Readiness(ready=True, seconds=0.0)
    program = f'{SERVICES_LIBRARY}\n{READINESS_LIBRARY}\npt_ready_main "$@"\n'
    started = time.monotonic()
    result = await runtime.exec(twin, ["bash", "-c", program, "readiness", str(int(timeout_s)), *items],
                                timeout_s=timeout_s + 15)
    readiness = parse(result.stdout.decode("utf-8", "replace"))
    if not readiness.ready:
        missing = readiness.missing or f"the readiness program ended {result.exit_code} without an answer"
        raise TwinNotReady(
            f"twin not ready after {time.monotonic() - started:.0f}s: {missing}",
            details={"missing": missing, "managers": readiness.managers,
                     "services": {n: s.model_dump() for n, s in readiness.services.items()}},
        )
    return readiness
