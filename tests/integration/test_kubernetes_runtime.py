"""The Kubernetes runtime against the fake API server (tests/kubernetes/fake_apiserver.py),
whose twin Pods are real Docker containers: the exact requests sent, exec over the websocket
channels, the kill at the deadline, copying files in, teardown and the janitor's listing.

With PATCHTWIN_TEST_KUBECONFIG set, the same tests run against that cluster instead, minus
those that read the fake's request log."""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from patchtwin.exceptions import CloneFailed, ImageUnavailable, TwinLost
from patchtwin.settings import Settings
from patchtwin.twins.kubernetes import API_USE, KubernetesRuntime
from patchtwin.twins.runtime import CUT_MARKER, LABEL_EXPIRES, LABEL_RUN, TwinLimits
from schemas.asset import Asset
from tests.clients import new_run_id
from tests.kubernetes.cluster import REAL_KUBECONFIG, cluster
from tests.kubernetes.fake_apiserver import FakeApiServer

IMAGE = "patchtwin/debian-nginx:12"
LIMITS = TwinLimits(cpus=0.5, memory_mb=256, pids=256)
needs_fake = pytest.mark.skipif(bool(REAL_KUBECONFIG), reason="reads the fake API server's request log")


def asset(**kubernetes: Any) -> Asset:
    return Asset.model_validate({"id": "web-01", "platform": {"os": "debian", "version": "12"},
                                 "runtime": "kubernetes", "kubernetes": kubernetes})


@pytest.fixture
async def fake_and_runtime() -> AsyncIterator[tuple[FakeApiServer | None, KubernetesRuntime]]:
    with tempfile.TemporaryDirectory(prefix="patchtwin-k8s-") as scratch:
        async with cluster(Path(scratch)) as (kubeconfig, fake):
            runtime = KubernetesRuntime(Settings(k8s_kubeconfig=str(kubeconfig), k8s_ready_timeout_s=20),
                                        owner="patchtwin-k8s-test")
            runtime.poll_s = 0.05
            try:
                yield fake, runtime
            finally:
                for row in await runtime.list_ours():
                    await runtime.destroy(row["name"])
                await runtime.close()


@pytest.fixture
def runtime(fake_and_runtime: tuple[FakeApiServer | None, KubernetesRuntime]) -> KubernetesRuntime:
    return fake_and_runtime[1]


async def test_ping_answers_while_the_api_server_does(runtime: KubernetesRuntime) -> None:
    # `/readyz` of the services that handle twins asks this of every runtime
    assert await runtime.ping() is True


async def test_ping_is_false_when_no_api_server_answers(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
        "users": [{"name": "gone", "user": {"token": "x"}}],
    }))
    runtime = KubernetesRuntime(Settings(k8s_kubeconfig=str(kubeconfig)), owner="patchtwin-k8s-test")
    try:
        assert await runtime.ping() is False
    finally:
        await runtime.close()


@pytest.fixture
def fake(fake_and_runtime: tuple[FakeApiServer | None, KubernetesRuntime]) -> FakeApiServer:
    assert fake_and_runtime[0] is not None
    return fake_and_runtime[0]


@needs_fake
async def test_create_sends_the_hardened_namespace_policies_quota_and_pod(
    runtime: KubernetesRuntime, fake: FakeApiServer
) -> None:
    run_id = new_run_id("k8s-create")
    twin = await runtime.create(run_id, IMAGE, limits=LIMITS, ttl_s=900, asset=asset(runtime_class="gvisor"))

    [namespace] = fake.sent("Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["app.kubernetes.io/managed-by"] == "patchtwin"
    assert labels["patchtwin.io/owner"] == "patchtwin-k8s-test"
    assert namespace["metadata"]["annotations"][LABEL_RUN] == run_id
    assert twin.namespace == twin.name == namespace["metadata"]["name"]

    [deny] = fake.sent("NetworkPolicy")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    [quota] = fake.sent("ResourceQuota")
    assert quota["spec"]["hard"]["limits.memory"] == "256Mi"
    assert quota["spec"]["hard"]["pods"] == "1"
    assert len(fake.sent("LimitRange")) == 1

    [pod] = fake.sent("Pod")
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["restartPolicy"] == "Never"
    [container] = spec["containers"]
    assert container["image"] == IMAGE
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "privileged": False, "seccompProfile": {"type": "RuntimeDefault"},
        "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "runAsUser": 65532,
    }
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    [scratch] = [v for v in spec["volumes"] if v["name"] == "patchtwin-scratch"]
    assert scratch["emptyDir"]["sizeLimit"] == "256Mi"
    assert {(c.group, c.resource, c.verb) for c in fake.calls} <= API_USE


async def test_exec_returns_each_channel_and_the_exit_code(runtime: KubernetesRuntime) -> None:
    twin = await runtime.create(new_run_id("k8s-exec"), IMAGE, limits=LIMITS, ttl_s=600, asset=asset())

    result = await runtime.exec(twin, ["sh", "-c", "id -u; echo oops >&2; exit 3"], timeout_s=10)

    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (3, b"65532\n", b"oops\n", False)


async def test_a_command_line_too_long_for_the_url_travels_over_stdin_byte_for_byte(
    runtime: KubernetesRuntime,
) -> None:
    twin = await runtime.create(new_run_id("k8s-argv"), IMAGE, limits=LIMITS, ttl_s=600, asset=asset())
    text = "quotes ' \" $HOME `x` and ünïcode\n" * 2000 + "\n\n"

    result = await runtime.exec(twin, ["printf", "%s", text], timeout_s=10)

    assert (result.exit_code, result.stdout.decode()) == (0, text)


async def test_exec_output_is_capped_and_counted(runtime: KubernetesRuntime) -> None:
    twin = await runtime.create(new_run_id("k8s-cap"), IMAGE, limits=LIMITS, ttl_s=600, asset=asset())

    result = await runtime.exec(twin, ["seq", "1", "20000"], timeout_s=10, output_cap=1000)

    head, _, tail = result.stdout.partition(CUT_MARKER)
    assert head.startswith(b"1\n2\n") and tail.endswith(b"19999\n20000\n")
    assert len(head) + len(tail) == 1000
    assert (result.stdout_bytes, result.truncated) == (len(b"".join(b"%d\n" % i for i in range(1, 20001))), True)


async def test_restricted_twin_cannot_write_its_root_filesystem_but_gets_a_file_copied_in(
    runtime: KubernetesRuntime,
) -> None:
    twin = await runtime.create(new_run_id("k8s-copy"), IMAGE, limits=LIMITS, ttl_s=600, asset=asset())

    await runtime.put_file(twin, "/opt/patchtwin/patch", b"#!/bin/sh\necho patched\n", mode=0o700)
    ran = await runtime.exec(twin, ["sh", "-c", "stat -c %a /opt/patchtwin/patch; /bin/sh /opt/patchtwin/patch"],
                             timeout_s=10)
    write = await runtime.exec(twin, ["touch", "/etc/patchtwin"], timeout_s=10)

    assert (ran.exit_code, ran.stdout) == (0, b"700\npatched\n")
    assert write.exit_code != 0 and b"Read-only file system" in write.stderr


async def test_files_are_copied_out_like_dockers_archive(runtime: KubernetesRuntime) -> None:
    twin = await runtime.create(new_run_id("k8s-out"), IMAGE, limits=LIMITS, ttl_s=600, asset=asset())

    folder = await runtime.copy_out(twin, "/etc/nginx/sites-enabled")
    capped = await runtime.copy_out(twin, "/etc/nginx/nginx.conf", max_bytes=10)
    missing = await runtime.copy_out(twin, "/etc/no-such-file")

    assert folder.refused == ["sites-enabled/default"]  # a symlink is never followed
    assert capped.truncated and capped.files == {"nginx.conf": b"user www-d"}
    assert (missing.files, missing.truncated) == ({}, False)


async def test_baseline_twin_runs_as_root_with_a_writable_root(runtime: KubernetesRuntime) -> None:
    twin = await runtime.create(new_run_id("k8s-root"), IMAGE, limits=LIMITS, ttl_s=600,
                                asset=asset(profile="baseline"))

    result = await runtime.exec(twin, ["sh", "-c", "id -u && touch /etc/patchtwin && echo wrote"], timeout_s=10)

    assert (result.exit_code, result.stdout) == (0, b"0\nwrote\n")


async def test_exec_past_its_timeout_is_killed_inside_the_pod(runtime: KubernetesRuntime) -> None:
    twin = await runtime.create(new_run_id("k8s-timeout"), IMAGE, limits=LIMITS, ttl_s=600, asset=asset())

    result = await runtime.exec(twin, ["sleep", "30"], timeout_s=0.5, grace_s=5)

    assert result.timed_out and result.exit_code == 137
    assert result.duration_s < 5


@needs_fake
async def test_exec_that_outlives_the_kill_inside_ends_with_the_pod_deleted(
    runtime: KubernetesRuntime, fake: FakeApiServer
) -> None:
    twin = await runtime.create(new_run_id("k8s-hang"), IMAGE, limits=LIMITS, ttl_s=600, asset=asset())

    # stopping `timeout` (the parent of sh) keeps its SIGKILL from ever firing
    result = await runtime.exec(twin, ["sh", "-c", "kill -STOP $PPID; sleep 30"], timeout_s=0.5, grace_s=1)

    assert result.timed_out and result.exit_code is None
    assert result.duration_s < 5
    assert ("DELETE", f"/api/v1/namespaces/{twin.namespace}/pods/twin") in [(c.method, c.path) for c in fake.calls]
    with pytest.raises(TwinLost):
        await runtime.exec(twin, ["true"], timeout_s=5)


async def test_an_image_the_cluster_cannot_pull_is_image_unavailable(runtime: KubernetesRuntime) -> None:
    with pytest.raises(ImageUnavailable, match="ErrImagePull"):
        await runtime.create(new_run_id("k8s-noimage"), "patchtwin/no-such-image:1", limits=LIMITS, ttl_s=600,
                             asset=asset())


async def test_destroy_run_deletes_the_namespace_and_the_janitor_listing_sees_it_go(
    runtime: KubernetesRuntime,
) -> None:
    run_id = new_run_id("k8s-destroy")
    twin = await runtime.create(run_id, IMAGE, limits=LIMITS, ttl_s=600, asset=asset())
    [row] = await runtime.list_ours(run_id)
    assert row["name"] == twin.name
    assert row["labels"][LABEL_RUN] == run_id and LABEL_EXPIRES in row["labels"]

    assert await runtime.destroy_run(run_id) == [twin.name]

    await runtime._delete_namespace_and_wait(twin.name)  # bounded wait until it is gone
    assert await runtime.list_ours(run_id) == []
    assert await runtime.destroy(twin.name) is False


SECRET_VALUE = "hunter2-do-not-copy"


def shop(fake: FakeApiServer) -> None:
    """A source namespace: a web Deployment, its database, a Service, a ConfigMap naming the
    database by its namespaced DNS name, and a Secret with a real value."""
    fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}, "status": {"phase": "Active"}})
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {
        "serviceAccountName": "web-sa",
        "containers": [{"name": "web", "image": IMAGE, "command": ["sleep", "infinity"],
                        "env": [{"name": "DB", "value": "db.shop.svc.cluster.local:5432"},
                                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-auth",
                                                                                    "key": "password"}}}]}]}}
    fake.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "namespace": "shop", "labels": {"app": "web"},
        "annotations": {"deployment.kubernetes.io/revision": "7"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"readyReplicas": 3}})
    fake.add({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
              "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                       "template": {"metadata": {"labels": {"app": "db"}},
                                    "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                       "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}})
    fake.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
              "spec": {"type": "NodePort", "clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
                       "selector": {"app": "db"}, "ports": [{"port": 5432, "nodePort": 30432}]}})
    fake.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "shop"},
              "data": {"DATABASE_URL": "postgres://db.shop.svc:5432/shop"}})
    fake.add({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-auth", "namespace": "shop"},
              "type": "Opaque", "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode(),
                                         "user": base64.b64encode(b"shop").decode()}})


@needs_fake
async def test_clone_copies_the_namespace_and_no_secret_value_leaves_it(
    runtime: KubernetesRuntime, fake: FakeApiServer
) -> None:
    shop(fake)

    twin = await runtime.create(new_run_id("k8s-clone"), "", limits=LIMITS, ttl_s=600,
                                asset=asset(profile="baseline", source_namespace="shop", workload="Deployment/web"))

    sent = json.dumps([c.body for c in fake.calls if c.body is not None])
    assert SECRET_VALUE not in sent
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in sent
    [secret] = fake.sent("Secret")
    assert secret["metadata"]["name"] == "db-auth" and secret["metadata"]["namespace"] == twin.namespace
    assert sorted(secret["data"]) == ["password", "user"]
    assert {base64.b64decode(v) for v in secret["data"].values()} == {b"patchtwin-placeholder"}
    [config] = fake.sent("ConfigMap")
    assert config["data"]["DATABASE_URL"] == f"postgres://db.{twin.namespace}.svc:5432/shop"
    [service] = fake.sent("Service")
    assert service["spec"]["type"] == "ClusterIP" and "clusterIP" not in service["spec"]
    assert "nodePort" not in service["spec"]["ports"][0]
    [db] = fake.sent("StatefulSet")
    assert db["spec"]["replicas"] == 1 and "volumeClaimTemplates" not in db["spec"]
    assert db["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert fake.sent("Deployment") == []  # the chosen workload is the twin Pod itself
    [pod] = fake.sent("Pod")
    assert pod["metadata"]["labels"]["app"] == "web"
    assert "serviceAccountName" not in pod["spec"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["DB"]["value"] == f"db.{twin.namespace}.svc.cluster.local:5432"
    assert [p for p in fake.sent("NetworkPolicy") if p["metadata"]["name"] == "patchtwin-allow-within"]
    assert twin.clone is not None
    assert twin.clone.placeholder_secrets == ["db-auth"]
    assert sorted(twin.clone.copied) == ["ConfigMap/web-config", "Service/db", "StatefulSet/db"]
    assert (twin.container, twin.image) == ("web", IMAGE)
    result = await runtime.exec(twin, ["sh", "-c", "echo $DB"], timeout_s=10)
    assert result.stdout.decode().strip() == f"db.{twin.namespace}.svc.cluster.local:5432"


@needs_fake
async def test_clone_whose_workloads_never_become_ready_fails_before_the_baseline(tmp_path: Path) -> None:
    async with cluster(tmp_path, workloads_ready=False) as (kubeconfig, fake):
        assert fake is not None
        shop(fake)
        runtime = KubernetesRuntime(Settings(k8s_kubeconfig=str(kubeconfig), k8s_ready_timeout_s=1))
        runtime.poll_s = 0.05
        try:
            with pytest.raises(CloneFailed, match="StatefulSet/db"):
                await runtime.create(new_run_id("k8s-unready"), "", limits=LIMITS, ttl_s=600,
                                     asset=asset(profile="baseline", source_namespace="shop",
                                                 workload="Deployment/web"))
        finally:
            for row in await runtime.list_ours():
                await runtime.destroy(row["name"])
            await runtime.close()


@needs_fake
async def test_cloning_a_workload_that_is_not_there_is_clone_failed(
    runtime: KubernetesRuntime, fake: FakeApiServer
) -> None:
    shop(fake)

    with pytest.raises(CloneFailed, match="Deployment/api not found in namespace shop"):
        await runtime.create(new_run_id("k8s-noworkload"), "", limits=LIMITS, ttl_s=600,
                             asset=asset(source_namespace="shop", workload="Deployment/api"))
