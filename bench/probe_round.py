"""The probe round alone: the contract's seven-check suite on a running nginx twin.

    .venv/bin/python -m bench.probe_round [--rounds 20]

Times `run_suite` (one round = one exec) against a bare `docker exec true` on the same twin,
so the figure reads as "the floor plus what the checks themselves cost", and against the
fan-out the engine avoids: the same seven checks as seven execs (one `run_suite` per check).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from patchtwin.checks import run_suite
from patchtwin.twins import DockerRuntime, TwinLimits
from patchtwin.twins.images import web_ref
from schemas import TwinRequested
from tests.contract import TWIN_REQUESTED


async def main(rounds: int) -> None:
    runtime = DockerRuntime(owner="patchtwin-bench-probe")
    twin = await runtime.create(f"bench-probe-{uuid.uuid4().hex[:8]}", web_ref("12"), limits=TwinLimits(),
                                ttl_s=600)
    try:
        await runtime.exec(twin, ["service", "nginx", "start"], timeout_s=30)
        checks = TwinRequested.model_validate(TWIN_REQUESTED).checks
        floor, probe, inside, fanout = [], [], [], []
        for _ in range(rounds):
            started = time.monotonic()
            await runtime.exec(twin, ["true"], timeout_s=10)
            floor.append(time.monotonic() - started)
            execs = runtime.exec_count
            started = time.monotonic()
            suite = await run_suite(runtime, twin, checks)
            probe.append(time.monotonic() - started)
            inside.append(suite.exec_durations_s[0])
            assert runtime.exec_count - execs == 1 and all(r.status.value == "passed" for r in suite.results)
            started = time.monotonic()
            for check in checks:
                await run_suite(runtime, twin, [check])
            fanout.append(time.monotonic() - started)
        for label, values in (("docker exec true", floor), ("probe round (7 checks)", probe),
                              ("  of which the exec", inside), ("7 execs, one per check", fanout)):
            ms = sorted(v * 1000 for v in values)
            print(f"{label:24} median {statistics.median(ms):7.1f} ms   p90 {ms[int(0.9 * (len(ms) - 1))]:7.1f} ms")
    finally:
        await runtime.destroy(twin.name)
        await runtime.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
