"""A twin's HostConfig is the hardened one, and files read out of a twin are read as hostile."""

from __future__ import annotations

import io
import tarfile

from patchtwin.twins.archives import read_archive
from patchtwin.twins.docker import DEFAULT_CAPABILITIES, Hardening, TwinLimits, host_config


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_default_host_config_drops_everything_it_does_not_need() -> None:
    config = host_config(TwinLimits(cpus=1.5, memory_mb=512, pids=100), Hardening())

    assert config["NetworkMode"] == "none"
    assert config["CapDrop"] == ["ALL"]
    assert config["CapAdd"] == list(DEFAULT_CAPABILITIES)
    assert config["SecurityOpt"] == ["no-new-privileges"]
    assert config["Memory"] == config["MemorySwap"] == 512 * 1024 * 1024
    assert config["NanoCpus"] == 1_500_000_000
    assert config["PidsLimit"] == 100
    assert {u["Name"]: (u["Soft"], u["Hard"]) for u in config["Ulimits"]} == {
        "nofile": (4096, 4096), "fsize": (1024 * 1024 * 1024,) * 2, "core": (0, 0)}
    assert config["Tmpfs"] == {"/tmp": "rw,exec,nosuid,nodev,size=64m,mode=1777"}
    assert config["Init"] is True
    assert config["LogConfig"]["Config"]["max-size"] == "1m"
    assert config["Privileged"] is False
    assert config["Binds"] == config["Mounts"] == config["Devices"] == []
    assert "/sys/fs/cgroup" in config["ReadonlyPaths"] and "/proc/sys" in config["ReadonlyPaths"]
    assert "Runtime" not in config
    assert not any("seccomp" in option or "apparmor" in option for option in config["SecurityOpt"])


def test_runtime_and_relaxations_show_in_host_config() -> None:
    hardening = Hardening(runtime="runsc", no_new_privileges=False,
                          capabilities=(*DEFAULT_CAPABILITIES, "SYS_PTRACE"))

    config = host_config(TwinLimits(), hardening, network="patchtwin-x-net")

    assert config["Runtime"] == "runsc"
    assert config["SecurityOpt"] == []
    assert config["CapAdd"][-1] == "SYS_PTRACE"
    assert config["NetworkMode"] == "patchtwin-x-net"


def test_isolation_report_names_limits_and_relaxations() -> None:
    report = Hardening(network="internal", relaxed=("network internal",)).report(TwinLimits(1, 256, 64))

    assert (report.network, report.memory_mb, report.cpus, report.pids) == ("internal", 256, 1, 64)
    assert report.relaxed == ["network internal"]
    assert report.seccomp == "default"


def test_archive_keeps_regular_files_and_refuses_links_devices_and_escapes() -> None:
    data = _tar(
        (_member("log", tarfile.DIRTYPE), None),
        (_member("log/app.log"), b"hello"),
        (_member("log/shadow", tarfile.SYMTYPE, "/etc/shadow"), None),
        (_member("log/up", tarfile.SYMTYPE, "../../../root"), None),
        (_member("log/hard", tarfile.LNKTYPE, "log/app.log"), None),
        (_member("../../etc/cron.d/evil"), b"* * * * * root sh"),
        (_member("log/../../escape"), b"x"),
        (_member("/etc/passwd"), b"root::0:0"),
        (_member("log/dev", tarfile.CHRTYPE), None),
        (_member("log/fifo", tarfile.FIFOTYPE), None),
    )

    copied = read_archive(data, max_bytes=1024)

    assert copied.files == {"log/app.log": b"hello"}
    assert sorted(copied.refused) == sorted([
        "log/shadow", "log/up", "log/hard", "../../etc/cron.d/evil", "log/../../escape", "/etc/passwd",
        "log/dev", "log/fifo"])
    assert not copied.truncated


def test_archive_content_is_capped_in_total() -> None:
    data = _tar((_member("a"), b"a" * 600), (_member("b"), b"b" * 600), (_member("c"), b"c" * 10))

    copied = read_archive(data, max_bytes=1000)

    assert copied.files["a"] == b"a" * 600
    assert copied.files["b"] == b"b" * 400
    assert copied.files["c"] == b""
    assert copied.truncated


def test_a_cut_or_garbage_archive_keeps_what_was_readable() -> None:
    whole = _tar((_member("first"), b"1" * 100), (_member("second"), b"2" * 5000))

    cut = read_archive(whole[:2048], max_bytes=10_000)
    garbage = read_archive(b"\x00not a tar" * 100, max_bytes=10_000)

    assert cut.files["first"] == b"1" * 100 and cut.truncated
    assert garbage.files == {}
