"""Snapshots parsed from the in-twin program's records, and the diff of two of them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from patchtwin.twins.snapshot import diff, parse, parse_socket
from schemas.state import ServiceState, Socket, SystemState


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


RECORDS = "\n".join([
    "began\t1000000000",
    f"svc\tnginx\tsysv\t0\t{_b64('nginx is running.')}",
    f"svc\tworker\tcommand\t1\t{_b64('pid 42 exited')}",
    "pm\tapt",
    "pkg\tii \tnginx\t1.22.1-9",
    "pkg\tii \topenssl\t3.0.15-1~deb12u1",
    "sock\ttcp\t0100007F:0050",
    "sock\ttcp6\t00000000000000000000000000000000:20FB",
    "sock\tudp\t00000000:0035",
    "proc\tnginx",
    "proc\tnginx",
    "proc\tsleep",
    "root\t/etc",
    "file\t" + "a" * 64 + "\t/etc/motd",
    "file\tlink:/lib/systemd\t/etc/alternatives/x",
    "user\troot",
    "group\troot",
    "sysctl\tnet.ipv4.ip_forward\t0",
    "garbage line that is no record",
    "ended\t3500000000",
])


def test_records_make_a_snapshot() -> None:
    state = parse(RECORDS)

    assert state.package_manager == "apt"
    assert state.packages == {"nginx": "1.22.1-9", "openssl": "3.0.15-1~deb12u1"}
    assert [str(s) for s in state.listening] == ["tcp 127.0.0.1:80", "tcp6 [::]:8443", "udp 0.0.0.0:53"]
    assert state.processes == {"nginx": 2, "sleep": 1}
    assert state.services["nginx"] == ServiceState(state="running", manager="sysv", detail="nginx is running.")
    assert state.services["worker"].state == "failed"
    assert state.files == {"/etc/motd": "a" * 64, "/etc/alternatives/x": "link:/lib/systemd"}
    assert (state.roots, state.users, state.groups) == (["/etc"], ["root"], ["root"])
    assert state.sysctls == {"net.ipv4.ip_forward": "0"}
    assert state.duration_s == 2.5


def test_proc_net_addresses_decode_in_host_byte_order() -> None:
    assert parse_socket("tcp", "0100007F:1F90") == Socket(proto="tcp", address="127.0.0.1", port=8080)
    # ::1 as /proc/net/tcp6 prints it (four host-order words)
    assert parse_socket("tcp6", "00000000000000000000000001000000:0016") == Socket(proto="tcp6", address="::1",
                                                                                  port=22)
    assert parse_socket("raw", "00000000:0000") is None
    assert parse_socket("tcp", "nonsense") is None


def _state(**fields: object) -> SystemState:
    return SystemState(taken_at=datetime.now(UTC), **fields)  # type: ignore[arg-type]


def test_diff_names_every_kind_of_change() -> None:
    before = _state(
        packages={"openssl": "3.0.11-1", "telnet": "0.17-44"},
        listening=[Socket(proto="tcp", address="0.0.0.0", port=23)],
        services={"nginx": ServiceState(state="running", manager="sysv")},
        files={"/etc/motd": "a", "/etc/old": "b"},
        users=["root"], groups=["root"],
        sysctls={"net.ipv4.ip_forward": "0", "kernel.random.uuid": "1"},
        processes={"nginx": 2},
    )
    after = _state(
        packages={"openssl": "3.0.15-1", "ptdemo": "1.0-1"},
        listening=[Socket(proto="tcp6", address="::", port=8443)],
        services={"nginx": ServiceState(state="stopped", manager="sysv")},
        files={"/etc/motd": "c", "/etc/new": "d"},
        users=["root", "app"], groups=["root", "app"],
        sysctls={"net.ipv4.ip_forward": "1", "kernel.random.uuid": "2"},
        processes={"perl": 1},
    )

    changes = diff(before, after)

    assert [(p.name, p.version) for p in changes.packages_added] == [("ptdemo", "1.0-1")]
    assert [(p.name, p.version) for p in changes.packages_removed] == [("telnet", "0.17-44")]
    assert [(p.name, p.before, p.after) for p in changes.packages_changed] == [("openssl", "3.0.11-1", "3.0.15-1")]
    assert [str(s) for s in changes.ports_opened] == ["tcp6 [::]:8443"]
    assert [str(s) for s in changes.ports_closed] == ["tcp 0.0.0.0:23"]
    assert [(s.name, s.before, s.after) for s in changes.services_changed] == [("nginx", "running", "stopped")]
    assert (changes.files_added, changes.files_removed, changes.files_changed) == (["/etc/new"], ["/etc/old"],
                                                                                   ["/etc/motd"])
    assert (changes.users_added, changes.groups_added) == (["app"], ["app"])
    assert [c.name for c in changes.sysctls_changed] == ["net.ipv4.ip_forward"]   # random values are noise
    assert (changes.processes_started, changes.processes_stopped) == (["perl"], ["nginx"])
    assert changes.summary().startswith("1 package added, 1 package removed, 1 package changed, 1 port opened")


def test_no_change_is_an_empty_diff() -> None:
    state = parse(RECORDS)
    assert diff(state, state).empty and diff(state, state).summary() == "no change"
