"""What a Docker container of ours is made with: its HostConfig and network, for twins and for
helpers alike (one hardening, loosened for a helper only where it must be). Names and labels
are every runtime's (`runtime.twin_name`, `runtime.labels`)."""

from __future__ import annotations

from typing import Any

from patchtwin.twins.runtime import Hardening, Helper, TwinLimits

LABEL_NETWORK = "io.patchtwin.network"
#: What the engine makes read-only by default (moby's oci defaults); setting the list replaces it.
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def host_config(limits: TwinLimits, hardening: Hardening, network: str = "none") -> dict[str, Any]:
    """The container's HostConfig: every setting docs/isolation.md explains, nothing from
    the host (no binds, no devices, no socket), the engine's default seccomp profile."""
    mib = 1024 * 1024
    config: dict[str, Any] = {
        "NetworkMode": network,
        "Privileged": False,
        "Binds": [],
        "Mounts": [],
        "Devices": [],
        "IpcMode": "private",
        "Memory": limits.memory_mb * mib,
        "MemorySwap": limits.memory_mb * mib,  # equal: no swap beyond the memory limit
        "NanoCpus": int(limits.cpus * 1e9),
        "PidsLimit": limits.pids,
        "CapDrop": ["ALL"],
        "CapAdd": list(hardening.capabilities),
        "SecurityOpt": ["no-new-privileges"] if hardening.no_new_privileges else [],
        "Ulimits": [
            {"Name": "nofile", "Soft": hardening.nofile, "Hard": hardening.nofile},
            {"Name": "fsize", "Soft": hardening.fsize_mb * mib, "Hard": hardening.fsize_mb * mib},
            {"Name": "core", "Soft": 0, "Hard": 0},
        ],
        "Tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={hardening.tmpfs_mb}m,mode=1777"},
        "ShmSize": hardening.tmpfs_mb * mib,
        # the engine's defaults, plus the cgroup tree's writable top (a tmpfs in cgroup v1)
        "ReadonlyPaths": [*DEFAULT_READONLY_PATHS, "/sys/fs/cgroup"],
        "Dns": ["127.0.0.1"],  # not the host's resolvers: nothing to learn about the host
        "OomScoreAdj": 500,  # under host memory pressure the kernel kills twins first
        "Init": True,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": f"{hardening.log_max_mb}m", "max-file": "1"}},
    }
    if hardening.runtime:
        config["Runtime"] = hardening.runtime
    return config


def network_name(twin: str) -> str:
    return f"{twin}-net"


LABEL_ROLE = "io.patchtwin.role"
#: A helper downloads as root, dropping to apt's `_apt` user: no NET_BIND_SERVICE, no KILL.
HELPER_HARDENING = Hardening(capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"))
HELPER_LIMITS = TwinLimits(memory_mb=1024, pids=256)


def helper_config(helper: Helper, helper_labels: dict[str, str]) -> dict[str, Any]:
    """A helper's container: a twin's HostConfig on the default bridge, with the engine's
    resolvers (it must reach a mirror) and its cache volumes."""
    host = host_config(HELPER_LIMITS, HELPER_HARDENING, network="bridge")
    del host["Dns"]
    host["Mounts"] = [{"Type": "volume", "Source": name, "Target": path} for name, path in helper.caches]
    return {
        "Image": helper.image,
        "Cmd": list(helper.argv),
        "Labels": {**helper_labels, LABEL_ROLE: helper.role},
        "HostConfig": host,
    }
