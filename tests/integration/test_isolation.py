"""Every twin the pipeline makes is hardened, as `docker inspect` and the twin itself show;
an asset's relaxations are applied and named in the verdict."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime, TwinLimits, twin_name
from patchtwin.twins.docker import DEFAULT_CAPABILITIES, network_name
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic, verdicts_of

#: capability numbers (linux/capability.h) of the default set
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6, "SETUID": 7,
            "NET_BIND_SERVICE": 10, "SYS_PTRACE": 19}
SECRETS = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PATCHTWIN_")


async def docker_inspect(*args: str) -> Any:
    process = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out)[0]


async def kept_twin(settings: Settings, request: dict[str, Any]) -> dict[str, Any]:
    """Runs the request through the pipeline, keeping its twin; returns the verdict."""
    await publish(settings, "twin.requested", {**request, "keep_twin": True})
    [verdict] = await verdicts_of(settings, request["run_id"], settle_s=0)
    await read_topic(settings, "twin.released", match=keyed(request["run_id"]), timeout_s=60)
    return verdict


async def test_default_twin_shows_every_hardened_setting(
    pipeline: App, settings: Settings, runtime: DockerRuntime
) -> None:
    run_id = new_run_id("hardened")
    name = twin_name(run_id, settings.instance)
    try:
        verdict = await kept_twin(settings, nginx_request(run_id, "true", checks=[{"type": "port", "port": 80}]))
        inspect = await docker_inspect("inspect", name)
        status = await runtime.exec(name, ["sh", "-c", "cat /proc/self/status; echo ---; env; "
                                    "echo ---; tr '\\0' '\\n' < /proc/1/environ"], timeout_s=10)
    finally:
        await runtime.destroy(name)

    assert verdict["status"] == "passed", verdict["summary"]
    assert verdict["isolation"]["relaxed"] == []
    assert verdict["isolation"]["network"] == "none"
    host = inspect["HostConfig"]
    mib = 1024 * 1024
    assert host["NetworkMode"] == "none"
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(DEFAULT_CAPABILITIES)
    assert host["SecurityOpt"] == ["no-new-privileges"]  # and no seccomp=unconfined: the default
    assert host["PidsLimit"] == settings.twin_pids
    assert host["Memory"] == host["MemorySwap"] == settings.twin_memory_mb * mib
    assert host["NanoCpus"] == int(settings.twin_cpus * 1e9)
    assert {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]} == {
        "nofile": (settings.twin_nofile,) * 2, "fsize": (settings.twin_fsize_mb * mib,) * 2, "core": (0, 0)}
    assert host["Tmpfs"] == {"/tmp": f"rw,exec,nosuid,nodev,size={settings.twin_tmpfs_mb}m,mode=1777"}
    assert host["Init"] is True
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}
    assert not host.get("Binds") and not host.get("Devices") and inspect["Mounts"] == []
    assert "/sys/fs/cgroup" in host["ReadonlyPaths"]
    assert host.get("Runtime") in ("runc", "", None)
    assert not any(k.startswith(SECRETS) for k in inspect["Config"]["Env"])

    proc_status, env, init_env = status.stdout.decode().split("---\n")
    fields = dict(line.split(":\t", 1) for line in proc_status.splitlines() if ":\t" in line)
    assert fields["Seccomp"] == "2"  # the engine's default profile filters this process
    assert fields["NoNewPrivs"] == "1"
    assert int(fields["CapEff"], 16) == sum(1 << CAP_BITS[c] for c in DEFAULT_CAPABILITIES)
    assert int(fields["CapBnd"], 16) == int(fields["CapEff"], 16)
    for secret in SECRETS:
        assert secret not in env and secret not in init_env
    assert settings.database_url and settings.database_url not in env + init_env
    assert settings.kafka_bootstrap_servers and settings.kafka_bootstrap_servers not in env + init_env


async def test_relaxed_asset_gets_its_own_internal_network_and_the_verdict_names_it(
    pipeline: App, settings: Settings, runtime: DockerRuntime
) -> None:
    run_id = new_run_id("relaxed")
    request = nginx_request(run_id, "true", checks=[{"type": "port", "port": 80}])
    request["asset"]["isolation"] = {"network": "internal", "capabilities": ["SYS_PTRACE"]}
    name = twin_name(run_id, settings.instance)
    try:
        verdict = await kept_twin(settings, request)
        inspect = await docker_inspect("inspect", name)
        network = await docker_inspect("network", "inspect", network_name(name))
        probe = await runtime.exec(name, ["bash", "-c", "grep CapEff /proc/self/status; "
                                   "gw=$(ip route | awk '/default/ {print $3}'); echo gw=$gw; "
                                   "timeout 5 bash -c \"echo > /dev/tcp/$gw/22\" 2>&1 || echo unreachable"],
                                   timeout_s=15)
    finally:
        await runtime.destroy(name)

    assert verdict["status"] == "passed", verdict["summary"]
    assert verdict["isolation"]["relaxed"] == ["network internal", "capability SYS_PTRACE"]
    assert inspect["HostConfig"]["NetworkMode"] == network_name(name)
    assert "SYS_PTRACE" in inspect["HostConfig"]["CapAdd"]
    assert network["Internal"] is True
    assert network["Options"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
    output = probe.stdout.decode()
    assert "gw=172." in output or "gw=10." in output or "gw=192.168." in output, output
    # no answer at all (an address the host does not have): not even "connection refused"
    assert "unreachable" in output and "refused" not in output, output
    assert int(output.split("CapEff:")[1].split()[0], 16) & (1 << CAP_BITS["SYS_PTRACE"])
    assert await runtime.docker.networks.list(filters={"name": [network_name(name)]}) == []


async def test_files_read_out_of_a_twin_are_read_as_hostile(
    runtime: DockerRuntime, settings: Settings, images: list[str]
) -> None:
    run_id = new_run_id("copyout")
    twin = await runtime.create(run_id, images[0], limits=TwinLimits(1, 128, 64), ttl_s=300)
    try:
        await runtime.exec(twin, ["sh", "-c", "mkdir -p /srv/out && echo report > /srv/out/report.txt && "
                                  "ln -s /etc/shadow /srv/out/shadow && ln -s ../../.. /srv/out/up && "
                                  "ln -s /etc/passwd /srv/link && head -c 3000000 /dev/zero > /srv/big"],
                           timeout_s=10)
        folder = await runtime.copy_out(twin, "/srv/out")
        big = await runtime.copy_out(twin, "/srv/big", max_bytes=1000)
        link = await runtime.read_file(twin, "/srv/link")
        report = await runtime.read_file(twin, "/srv/out/report.txt", limit=3)
        missing = await runtime.read_file(twin, "/srv/nothing")
    finally:
        await runtime.destroy(twin.name)

    assert folder.files["out/report.txt"] == b"report\n"
    assert sorted(folder.refused) == ["out/shadow", "out/up"]
    assert not folder.truncated
    assert big.files == {"big": b"\0" * 1000} and big.truncated
    assert link is None  # a symlink in the file's place is not followed
    assert report == b"rep"
    assert missing is None
