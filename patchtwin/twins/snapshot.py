"""System-state snapshots of a twin (one exec each) and the diff of two of them.

A snapshot holds packages and versions, listening sockets read from /proc/net (tcp, tcp6,
udp, udp6: an IPv6-only listener counts), processes, service states, hashes of the files under
the configured roots (default /etc), users, groups and readable sysctls.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import Counter
from datetime import UTC, datetime
from importlib import resources
from typing import Literal

from patchtwin.settings import Settings
from patchtwin.twins import TwinRuntime
from patchtwin.twins.packages import detect_packages_script, package_manager
from patchtwin.twins.service_states import decode_b64, service_state
from schemas.asset import Asset
from schemas.events import RunContext, TwinRef
from schemas.state import (
    PackageChange,
    PackageVersion,
    ServiceChange,
    Socket,
    StateDiff,
    SystemState,
    ValueChange,
)

log = logging.getLogger("patchtwin.snapshot")

PROTOCOLS: dict[str, Literal["tcp", "tcp6", "udp", "udp6"]] = {p: p for p in ("tcp", "tcp6", "udp", "udp6")}

SERVICES_LIBRARY = resources.files("patchtwin.twins").joinpath("services.sh").read_text()
SNAPSHOT_LIBRARY = resources.files("patchtwin.twins").joinpath("snapshot.sh").read_text()

#: Sysctls that change on their own (counters, random values): never reported as changed.
VOLATILE_SYSCTLS = re.compile(
    r"^(kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|fs\.(dentry-state|inode-nr|inode-state|file-nr|"
    r"dquot-nr|quota\.)|net\.netfilter\.nf_conntrack_count|kernel\.tainted)"
)


def build_script(asset: Asset, roots: list[str], max_files: int, managers: dict[str, str]) -> list[str]:
    """argv for one exec: bash, the program, then its arguments (no user text is parsed by bash)."""
    program = "\n".join([
        SERVICES_LIBRARY,
        SNAPSHOT_LIBRARY.replace("  PT_PACKAGES\n", detect_packages_script() + "\n"),
        'pt_snapshot_main "$@"',
    ])
    items = [f"root:{root}" for root in roots]
    items += [f"extra:{f.path}" for f in asset.files if not any(_under(f.path, root) for root in roots)]
    items += [f"svc:{s.name}:{managers.get(s.name, s.manager)}" for s in asset.service_specs]
    return ["bash", "-c", program, "snapshot", str(max_files), *items]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


async def take(runtime: TwinRuntime, twin: TwinRef, asset: Asset, *, roots: list[str], max_files: int,
               managers: dict[str, str] | None = None, timeout_s: float = 60) -> SystemState:
    """The twin's state now. `managers` are those readiness found (service → manager)."""
    argv = build_script(asset, roots, max_files, managers or {})
    result = await runtime.exec(twin, argv, timeout_s=timeout_s, output_cap=32 * 1024 * 1024)
    if result.exit_code != 0:
        raise RuntimeError(f"snapshot exited {result.exit_code}: {result.stderr.decode(errors='replace')[-500:]}")
    return parse(result.stdout.decode("utf-8", "replace"))


def parse(output: str) -> SystemState:
    """A snapshot from the program's records (`tag<TAB>fields...`); unknown lines are skipped."""
    state = SystemState(taken_at=datetime.now(UTC))
    manager_name = ""
    package_lines: list[str] = []
    processes: Counter[str] = Counter()
    began = ended = 0
    for line in output.splitlines():
        tag, _, rest = line.partition("\t")
        fields = rest.split("\t")
        match tag:
            case "began" | "ended":
                began, ended = (int(rest), ended) if tag == "began" else (began, int(rest))
            case "pm":
                manager_name = rest
            case "pkg":
                package_lines.append(rest)
            case "sock" if len(fields) == 2:
                if socket := parse_socket(fields[0], fields[1]):
                    state.listening.append(socket)
            case "proc":
                processes[rest] += 1
            case "svc" if len(fields) == 4:
                name, manager, code, out = fields
                state.services[name] = service_state(manager, int(code) if code.isdigit() else 4, decode_b64(out))
            case "file" if len(fields) == 2:
                state.files[fields[1]] = fields[0]
            case "root":
                state.roots.append(rest)
            case "trunc":
                state.files_truncated = True
            case "user":
                state.users.append(rest)
            case "group":
                state.groups.append(rest)
            case "sysctl" if len(fields) == 2:
                state.sysctls[fields[0]] = fields[1]
    if manager_name:
        state.package_manager = manager_name
        state.packages = package_manager(manager_name).parse_list("\n".join(package_lines))
    state.listening = sorted({s.key(): s for s in state.listening}.values(), key=lambda s: s.key())
    state.processes = dict(sorted(processes.items()))
    state.duration_s = round((ended - began) / 1e9, 3) if began and ended else 0.0
    return state


def parse_socket(proto: str, local: str) -> Socket | None:
    """`0100007F:0050` (tcp) → 127.0.0.1:80; `00000000000000000000000000000000:1F90` (tcp6) → [::]:8080."""
    family = PROTOCOLS.get(proto)
    if family is None:
        return None
    try:
        address_hex, port_hex = local.split(":")
        raw = bytes.fromhex(address_hex)
        # /proc/net prints the address as host-order 32-bit words
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        address = str(ipaddress.ip_address(words))
        return Socket(proto=family, address=address, port=int(port_hex, 16))
    except ValueError:
        return None


def diff(before: SystemState, after: SystemState) -> StateDiff:
    """What changed from `before` to `after` (same twin, before and after the patch)."""
    result = StateDiff()
    for name in sorted(after.packages.keys() - before.packages.keys()):
        result.packages_added.append(PackageVersion(name=name, version=after.packages[name]))
    for name in sorted(before.packages.keys() - after.packages.keys()):
        result.packages_removed.append(PackageVersion(name=name, version=before.packages[name]))
    for name in sorted(before.packages.keys() & after.packages.keys()):
        if before.packages[name] != after.packages[name]:
            result.packages_changed.append(
                PackageChange(name=name, before=before.packages[name], after=after.packages[name]))
    was = {s.key(): s for s in before.listening}
    now = {s.key(): s for s in after.listening}
    result.ports_opened = [now[k] for k in sorted(now.keys() - was.keys())]
    result.ports_closed = [was[k] for k in sorted(was.keys() - now.keys())]
    for name in sorted(before.services.keys() | after.services.keys()):
        old = before.services[name].state if name in before.services else "absent"
        new = after.services[name].state if name in after.services else "absent"
        if old != new:
            result.services_changed.append(ServiceChange(name=name, before=old, after=new))
    result.files_added = sorted(after.files.keys() - before.files.keys())
    result.files_removed = sorted(before.files.keys() - after.files.keys())
    result.files_changed = sorted(p for p in before.files.keys() & after.files.keys()
                                  if before.files[p] != after.files[p])
    result.users_added = sorted(set(after.users) - set(before.users))
    result.users_removed = sorted(set(before.users) - set(after.users))
    result.groups_added = sorted(set(after.groups) - set(before.groups))
    result.groups_removed = sorted(set(before.groups) - set(after.groups))
    for key in sorted(before.sysctls.keys() | after.sysctls.keys()):
        if VOLATILE_SYSCTLS.match(key):
            continue
        if before.sysctls.get(key) != after.sysctls.get(key):
            result.sysctls_changed.append(
                ValueChange(name=key, before=before.sysctls.get(key), after=after.sysctls.get(key)))
    result.processes_started = sorted(after.processes.keys() - before.processes.keys())
    result.processes_stopped = sorted(before.processes.keys() - after.processes.keys())
    return result


async def diff_after(runtime: TwinRuntime, context: RunContext, settings: Settings) -> StateDiff | None:
    """The patch's changes: a snapshot now, against the baseline one (None when there is none
    or the twin cannot be snapshotted now: the run is judged on its checks alone)."""
    if context.state is None:
        return None
    managers = context.provisioning.managers if context.provisioning else {}
    try:
        after = await take(runtime, context.twin, context.request.asset,
                           roots=context.state.roots or settings.snapshot_roots,
                           max_files=settings.snapshot_max_files, managers=managers,
                           timeout_s=settings.snapshot_timeout_s)
    except Exception:
        log.warning("run %s: no snapshot after the patch", context.request.run_id, exc_info=True)
        return None
    return diff(context.state, after)
