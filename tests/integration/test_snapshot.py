"""A snapshot of a real twin reads its sysctls exactly as /proc/sys holds them, in one cheap
pass (it is taken twice a run, in a twin of half a CPU, so its cost is every run's latency)."""

from __future__ import annotations

from patchtwin.twins import DockerRuntime, TwinLimits, snapshot
from schemas.asset import Asset
from tests.clients import new_run_id

#: What a snapshot's sysctls must equal: each readable file's first line, read by the shell's
#: `read` (which trims the ends), at most 3000 files; empty files have no value to read.
_EACH_FILE_READ = r"""
find /proc/sys -type f -perm -u+r -print0 2>/dev/null | head -z -n 3000 |
  while IFS= read -r -d '' f; do
    read -r v < "$f" 2>/dev/null || continue
    key=${f#/proc/sys/}; printf '%s\t%s\n' "${key//\//.}" "$v"
  done
"""


async def test_snapshot_reads_every_readable_sysctl_as_the_shell_reads_it(
    runtime: DockerRuntime, images: list[str]
) -> None:
    asset = Asset.model_validate({"id": "snap", "platform": {"os": "debian", "version": "12"}})
    twin = await runtime.create(new_run_id("snap"), "patchtwin/debian:12",
                                limits=TwinLimits(cpus=0.5, memory_mb=128, pids=128), ttl_s=300)
    try:
        state = await snapshot.take(runtime, twin, asset, roots=["/etc"], max_files=5000)
        each = await runtime.exec(twin, ["bash", "-c", _EACH_FILE_READ], timeout_s=60)
    finally:
        await runtime.destroy(twin.name)
    expected = dict(line.split("\t", 1) for line in each.stdout.decode().splitlines())
    assert len(expected) > 300, "a Debian twin has hundreds of readable sysctls"
    # values of more than one field (tabs inside) are not single sysctl values: the parser skips them
    single = {k: v for k, v in expected.items() if "\t" not in v}
    assert state.sysctls.keys() == single.keys()
    stable = {k for k in single if not snapshot.VOLATILE_SYSCTLS.match(k)}
    assert {k: state.sysctls[k] for k in stable} == {k: single[k] for k in stable}
    assert state.sysctls["net.ipv4.ip_forward"] in {"0", "1"}


async def test_a_snapshot_has_every_section_and_never_hashes_its_own_scratch_files(
    runtime: DockerRuntime, images: list[str]
) -> None:
    """The sections run side by side through scratch files under /tmp: with /tmp a root, only
    the twin's own files there are hashed, and every section still arrives."""
    asset = Asset.model_validate({"id": "snap", "platform": {"os": "debian", "version": "12"}})
    twin = await runtime.create(new_run_id("snap-tmp"), "patchtwin/debian:12",
                                limits=TwinLimits(cpus=0.5, memory_mb=128, pids=128), ttl_s=300)
    try:
        await runtime.exec(twin, ["sh", "-c", "echo mine > /tmp/own.txt"], timeout_s=30)
        state = await snapshot.take(runtime, twin, asset, roots=["/etc", "/tmp"], max_files=5000)
        leftovers = await runtime.exec(twin, ["sh", "-c", "ls -a /tmp"], timeout_s=30)
    finally:
        await runtime.destroy(twin.name)
    assert [path for path in state.files if path.startswith("/tmp/")] == ["/tmp/own.txt"]
    assert any(path.startswith("/etc/") for path in state.files)
    assert state.packages and state.users and state.groups and state.sysctls and state.processes
    assert ".patchtwin-snapshot" not in leftovers.stdout.decode()  # the scratch folder is removed
