"""Attacks on the twin, each a patch submitted through the normal pipeline, with the outcome a
scanner would see. All are submitted at once, with a normal run alongside; the suite's limits
are in `conftest.LIMITS` (128 MiB, 64 pids, 0.5 CPU, 8 MiB files, 4 MiB /tmp, 64 KiB output)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from patchtwin.twins import DockerRuntime
from tests.clients import NGINX_CHECKS, keyed, new_run_id, nginx_request, publish, read_topic
from tests.security.conftest import LIMITS

GOOD = ("#!/bin/sh\nset -e\nsed -i 's/worker_connections 768/worker_connections 1024/' "
        "/etc/nginx/nginx.conf\nnginx -t\nservice nginx reload\n")
SECRETS = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PATCHTWIN_")
MIB = 1024 * 1024
#: marks this session's lingering process, so the host can look for it
TOKEN = uuid.uuid4().hex[:12]

#: name → (script, interpreter, timeout_s, checks)
ATTACKS: dict[str, tuple[str, str, float, list[dict[str, Any]]]] = {
    # fills the pids limit, then reads its cgroup with shell builtins only (nothing can fork)
    "fork_bomb": ("""
d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup
mkfifo /tmp/wait && exec 3<>/tmp/wait
( bomb() { bomb | bomb & }; bomb ) 2>/dev/null &
read -t 2 -u 3
read -r max < $d/pids.max; echo "pids.max=$max"
read -r current < $d/pids.current; echo "pids.current=$current"
while read -r event count; do echo "pids.events.$event=$count"; done < $d/pids.events
read -t 60 -u 3
""", "/bin/bash", 4, []),
    "memory_bomb": ("""perl -e 'my @hog; push @hog, "x" x (1 << 20) while 1'""", "/bin/sh", 30, []),
    "disk_fill_layer": ("""
dd if=/dev/zero of=/var/tmp/fill bs=1M count=64; rc=$?
echo "dd=$rc size=$(stat -c %s /var/tmp/fill)"; exit $rc
""", "/bin/sh", 30, []),
    "disk_fill_tmpfs": ("""
dd if=/dev/zero of=/tmp/fill bs=1M count=64; rc=$?
echo "dd=$rc size=$(stat -c %s /tmp/fill)"; exit $rc
""", "/bin/sh", 30, []),
    "cpu_spin": ("while :; do :; done", "/bin/sh", 2, []),
    "network": ("""
getent hosts deb.debian.org; echo "dns=$?"
(echo > /dev/tcp/1.1.1.1/80) 2>&1; echo "tcp_internet=$?"
(echo > /dev/tcp/172.17.0.1/2375) 2>&1; echo "tcp_docker_bridge=$?"
echo "routes=[$(ip -4 route; ip -6 route)]"
echo "links=[$(ls /sys/class/net | tr '\\n' ' ')]"
""", "/bin/bash", 30, []),
    "host_view": ("""
env; tr '\\0' '\\n' < /proc/1/environ; echo "---"
ls -l /var/run/docker.sock /run/docker.sock /host 2>&1; echo "---"
cat /proc/self/mountinfo; echo "---"
ps -eo comm=
""", "/bin/bash", 30, []),
    "escape": ("""
mount -t tmpfs none /mnt 2>&1; echo "mount=$?"
unshare -Ur true 2>&1; echo "unshare_user=$?"
unshare -m true 2>&1; echo "unshare_mount=$?"
d=/sys/fs/cgroup/pids; [ -d $d ] || d=/sys/fs/cgroup
(echo 100000 > $d/pids.max) 2>&1; echo "cgroup_write=$?"
mkdir /sys/fs/cgroup/escape 2>&1; echo "cgroup_mkdir=$?"
read -r max < $d/pids.max; echo "pids.max=$max"
""", "/bin/bash", 30, []),
    "output_flood": ("head -c 100000000 /dev/zero | tr '\\0' a", "/bin/sh", 30, []),
    # a child in the patch's session and one in a session of its own, then past the timeout
    "lingering": ("""
sh -c 'sleep 1000; : lingerer-same' &
setsid sh -c 'sleep 1000; : lingerer-setsid-TOKEN' &
echo started; sleep 60
""", "/bin/sh", 2, [{"type": "command", "name": "same-session child gone",
                     "run": "! pgrep -f 'lingerer-sam[e]'"}]),
    # 20 children exit unwaited (zombies), then their parent is killed: init must reap them
    "zombies": ("""
perl -e 'for (1..20) { exit 0 unless fork } sleep 100' &
parent=$!; sleep 1
echo "zombies.while_parent_lives=$(ps -eo stat= | grep -c '^Z')"
kill -9 $parent; wait $parent 2>/dev/null; sleep 1
echo "zombies.after=$(ps -eo stat= | grep -c '^Z')"
""", "/bin/bash", 30, []),
}


@dataclass
class Outcomes:
    verdicts: dict[str, dict[str, Any]]
    run_ids: dict[str, str]
    released: dict[str, dict[str, Any]]
    host_fork_failures: list[str] = field(default_factory=list)
    host_fork_worst_s: float = 0.0
    seconds: float = 0.0


async def _verdict(settings: Settings, run_id: str) -> dict[str, Any]:
    [record] = await read_topic(settings, settings.topic("verdict.issued"), match=keyed(run_id), timeout_s=120)
    return dict(json.loads(record.value))


async def _released(settings: Settings, run_id: str) -> dict[str, Any]:
    [record] = await read_topic(settings, settings.topic("twin.released"), match=keyed(run_id), timeout_s=120)
    return dict(json.loads(record.value))


async def _watch_host(failures: list[str], worst: list[float], stop: asyncio.Event) -> None:
    """The host keeps forking while the twins are attacked: a process every 0.2 s."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec("true")
            if await process.wait() != 0:
                failures.append("true exited non-zero")
        except OSError as exc:
            failures.append(str(exc))
        worst[0] = max(worst[0], time.monotonic() - started)
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def outcomes(security_pipeline: App, security_settings: Settings) -> Outcomes:
    settings = security_settings
    requests: dict[str, dict[str, Any]] = {}
    for name, (script, interpreter, timeout_s, checks) in ATTACKS.items():
        request = nginx_request(new_run_id(f"sec-{name.replace('_', '-')}"), script.replace("TOKEN", TOKEN),
                                checks=checks, timeout_s=timeout_s)
        request["asset"]["services"] = []
        request["patch"]["interpreter"] = interpreter
        requests[name] = request
    requests["neighbour"] = nginx_request(new_run_id("sec-neighbour"), GOOD, checks=NGINX_CHECKS)
    failures: list[str] = []
    worst = [0.0]
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_host(failures, worst, stop))
    started = time.monotonic()
    try:
        await asyncio.gather(*(publish(settings, settings.topic("twin.requested"), r) for r in requests.values()))
        names = list(requests)
        verdicts = await asyncio.gather(*(_verdict(settings, requests[n]["run_id"]) for n in names))
        released = await asyncio.gather(*(_released(settings, requests[n]["run_id"]) for n in names))
    finally:
        stop.set()
        await watcher
    return Outcomes(
        verdicts=dict(zip(names, verdicts, strict=True)),
        run_ids={n: r["run_id"] for n, r in requests.items()},
        released=dict(zip(names, released, strict=True)),
        host_fork_failures=failures, host_fork_worst_s=worst[0], seconds=time.monotonic() - started,
    )


def _codes(verdict: dict[str, Any], kind: str = "issues") -> list[str]:
    return [issue["code"] for issue in verdict[kind]]


def _values(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line.split("=")[0])


def test_fork_bomb_is_held_by_the_pids_limit_and_the_host_keeps_forking(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["fork_bomb"]
    seen = _values(verdict["patch"]["stdout"])

    assert verdict["status"] == "failed", verdict["summary"]
    assert "PATCH_TIMEOUT" in _codes(verdict)
    assert seen["pids.max"] == str(LIMITS["twin_pids"])
    assert int(seen["pids.current"]) <= LIMITS["twin_pids"]
    assert int(seen["pids.events.max"]) > 0  # forks were refused at the limit
    assert outcomes.host_fork_failures == []
    assert outcomes.host_fork_worst_s < 5


def test_memory_bomb_is_killed_at_the_memory_limit(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["memory_bomb"]

    assert verdict["status"] == "failed", verdict["summary"]
    assert _codes(verdict) == ["PATCH_OOM"]
    assert verdict["patch"]["oom_killed"] is True
    assert verdict["isolation"]["memory_mb"] == LIMITS["twin_memory_mb"]


def test_a_file_filling_the_writable_layer_stops_at_the_file_size_limit(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["disk_fill_layer"]
    seen = _values(verdict["patch"]["stdout"].replace(" ", "\n"))

    assert verdict["status"] == "failed", verdict["summary"]
    assert seen["size"] == str(LIMITS["twin_fsize_mb"] * MIB)
    assert seen["dd"] == "153"  # 128 + SIGXFSZ: the kernel stopped it at RLIMIT_FSIZE
    assert verdict["patch"]["exit_code"] == 153  # the script passed dd's status on
    assert _codes(verdict) == ["PATCH_FAILED"]


def test_filling_tmp_stops_at_the_tmpfs_size(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["disk_fill_tmpfs"]
    seen = _values(verdict["patch"]["stdout"].replace(" ", "\n"))

    assert verdict["status"] == "failed", verdict["summary"]
    assert int(seen["size"]) <= LIMITS["twin_tmpfs_mb"] * MIB
    assert "No space left on device" in verdict["patch"]["stderr"]
    assert _codes(verdict) == ["PATCH_FAILED"]


def test_cpu_spin_is_killed_at_the_timeout(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["cpu_spin"]

    assert verdict["status"] == "failed", verdict["summary"]
    assert _codes(verdict) == ["PATCH_TIMEOUT"]
    assert 2 <= verdict["patch"]["duration_s"] < 2 + LIMITS["patch_kill_grace_s"]
    assert verdict["isolation"]["cpus"] == LIMITS["twin_cpus"]


def test_no_route_out_and_no_name_resolution(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["network"]
    stdout = verdict["patch"]["stdout"]
    seen = _values(stdout)

    assert seen["dns"] == "2"  # getent: not found
    assert seen["tcp_internet"] != "0" and seen["tcp_docker_bridge"] != "0"
    assert "1.1.1.1/80: Network is unreachable" in stdout
    assert "172.17.0.1/2375: Network is unreachable" in stdout
    assert "routes=[]" in stdout
    assert "links=[lo ]" in stdout
    assert verdict["isolation"]["network"] == "none"


def test_nothing_of_the_host_is_visible(outcomes: Outcomes, security_settings: Settings) -> None:
    stdout = outcomes.verdicts["host_view"]["patch"]["stdout"]
    environment, sockets, mountinfo, processes = stdout.split("---\n")

    for secret in SECRETS:
        assert secret not in environment
    assert security_settings.database_url and security_settings.database_url not in stdout
    assert security_settings.kafka_bootstrap_servers and security_settings.kafka_bootstrap_servers not in stdout
    assert sockets.count("No such file or directory") == 3
    for line in mountinfo.splitlines():
        root, mount_point = line.split()[3:5]
        fstype = line.split(" - ")[1].split()[0]
        if fstype in ("overlay", "proc", "tmpfs", "devpts", "mqueue", "sysfs", "cgroup", "cgroup2"):
            continue
        # the only files from the host's disk: Docker's own resolv.conf, hostname and hosts of
        # this container, and its init binary, read-only
        if mount_point.endswith("/docker-init"):
            assert " ro," in line, line
        else:
            assert "/containers/" in root and mount_point in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts"), line
    names = set(processes.split())
    assert not names & {"dockerd", "containerd", "python", "python3", "postgres", "tansu", "systemd"}, names


def test_mount_unshare_and_cgroup_writes_are_denied(outcomes: Outcomes) -> None:
    seen = _values(outcomes.verdicts["escape"]["patch"]["stdout"])

    assert seen["mount"] != "0"
    assert seen["unshare_user"] != "0" and seen["unshare_mount"] != "0"
    assert seen["cgroup_write"] != "0" and seen["cgroup_mkdir"] != "0"
    assert seen["pids.max"] == str(LIMITS["twin_pids"])


def test_100_mb_of_output_is_capped_and_the_run_completes(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["output_flood"]
    patch = verdict["patch"]

    assert verdict["status"] == "passed", verdict["summary"]
    assert "OUTPUT_TRUNCATED" in _codes(verdict, "warnings")
    assert patch["stdout_bytes"] == 100_000_000
    assert len(patch["stdout"].encode()) <= LIMITS["patch_output_cap_bytes"] + 100  # + the cut marker
    assert patch["truncated"] is True


async def test_a_process_outliving_the_patch_is_gone_after_the_timeout(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["lingering"]
    [check] = verdict["checks"]
    # the host sees every process of every container: is the setsid'd one still anywhere?
    pgrep = await asyncio.create_subprocess_exec("pgrep", "-f", f"lingerer-setsid-{TOKEN}")

    assert _codes(verdict) == ["PATCH_TIMEOUT"]
    assert (check["baseline"], check["after"]) == ("passed", "passed")  # killed with the patch's session
    assert outcomes.released["lingering"]["twins"]  # the twin was removed after the verdict...
    assert await pgrep.wait() == 1  # ...and the process that escaped the session with it


def test_zombies_are_reaped(outcomes: Outcomes) -> None:
    seen = _values(outcomes.verdicts["zombies"]["patch"]["stdout"])

    assert int(seen["zombies.while_parent_lives"]) >= 20
    assert seen["zombies.after"] == "0"


def test_a_normal_run_alongside_the_attacks_passes(outcomes: Outcomes) -> None:
    verdict = outcomes.verdicts["neighbour"]

    assert verdict["status"] == "passed", verdict["summary"]
    assert {c["classification"] for c in verdict["checks"]} == {"stable"}
    assert len(verdict["checks"]) == len(NGINX_CHECKS)


async def test_afterwards_no_twin_is_left_and_the_services_still_serve(
    outcomes: Outcomes, security_pipeline: App, security_settings: Settings
) -> None:
    runtime = DockerRuntime(security_settings.docker_url, owner=security_settings.owner,
                            instance=security_settings.instance)
    try:
        left = await runtime.list_ours()
        networks = await runtime.docker.networks.list(filters={"name": ["patchtwin-sec-"]})
    finally:
        await runtime.close()
    run_id = new_run_id("sec-after")
    await publish(security_settings, security_settings.topic("twin.requested"), nginx_request(run_id, GOOD))
    verdict = await _verdict(security_settings, run_id)

    assert left == []
    assert networks == []
    assert all(not r.get("kept") for r in outcomes.released.values())
    assert verdict["status"] == "passed", verdict["summary"]
    assert outcomes.seconds < 120
