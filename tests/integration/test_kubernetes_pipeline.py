"""The pipeline test of test_pipeline.py, through the Kubernetes runtime: the same five
services, a request with `asset.runtime: kubernetes`, a verdict out. The API server is the
in-process fake (tests/kubernetes/fake_apiserver.py) whose twin Pods are real Docker
containers, so the baseline, the patch and the checks really run."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest

from patchtwin.cli.app import App
from patchtwin.settings import Settings
from patchtwin.twins.kubernetes import KubernetesRuntime
from patchtwin.twins.runtime import TwinLimits
from services.janitor.logic import sweep
from tests.clients import keyed, new_run_id, nginx_request, publish, read_topic, verdicts_of
from tests.integration.test_pipeline import BREAKING, GOOD
from tests.kubernetes.fake_apiserver import FakeApiServer


def on_kubernetes(request: dict[str, Any], **options: Any) -> dict[str, Any]:
    request["asset"]["runtime"] = "kubernetes"
    request["asset"]["kubernetes"] = {"profile": "baseline", **options}  # nginx and apt need root
    return request


@pytest.fixture
def fake(kubeconfig: tuple[Path, FakeApiServer | None]) -> FakeApiServer:
    if kubeconfig[1] is None:
        pytest.skip("reads the fake API server's request log")
    return kubeconfig[1]


async def test_good_patch_passes_on_a_kubernetes_twin_and_its_namespace_is_deleted(
    pipeline: App, settings: Settings, fake: FakeApiServer
) -> None:
    run_id = new_run_id("k8s-good")
    await publish(settings, "twin.requested", on_kubernetes(nginx_request(run_id, GOOD)))

    [verdict] = await verdicts_of(settings, run_id)
    await read_topic(settings, "twin.released", match=keyed(run_id), timeout_s=60)

    assert verdict["status"] == "passed", verdict["summary"]
    assert {c["classification"] for c in verdict["checks"]} == {"stable"}
    assert len(verdict["checks"]) == 7
    [namespace] = [n["metadata"]["name"] for n in fake.sent("Namespace")
                   if n["metadata"]["annotations"]["io.patchtwin.run-id"] == run_id]
    execs = [c for c in fake.calls if c.path == f"/api/v1/namespaces/{namespace}/pods/twin/exec"]
    # services up, baseline (2 rounds), state snapshot, copy the patch and its supervisor in,
    # run it, read its status, state snapshot after, checks after (2 rounds)
    assert len(execs) == 11
    assert ("DELETE", f"/api/v1/namespaces/{namespace}") in [(c.method, c.path) for c in fake.calls]
    assert pipeline.runtimes is not None
    left = await pipeline.runtimes.get("kubernetes").list_ours(run_id)
    assert all(row["state"] == "Terminating" for row in left)  # going, or already gone


async def test_breaking_patch_fails_on_a_kubernetes_twin(pipeline: App, settings: Settings) -> None:
    run_id = new_run_id("k8s-breaking")
    await publish(settings, "twin.requested", on_kubernetes(nginx_request(run_id, BREAKING)))

    [verdict] = await verdicts_of(settings, run_id)

    assert verdict["status"] == "failed"
    assert [i["check"] for i in verdict["issues"] if i["code"] == "CHECK_REGRESSED"] == ["http GET http://127.0.0.1/"]


async def test_a_patch_on_a_cloned_namespace_says_its_secrets_were_placeholders(
    pipeline: App, settings: Settings, fake: FakeApiServer
) -> None:
    fake.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "billing"},
              "status": {"phase": "Active"}})
    fake.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "billing"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
                  "metadata": {"labels": {"app": "web"}},
                  "spec": {"containers": [{"name": "web", "image": "patchtwin/debian-nginx:12",
                                           "command": ["sleep", "infinity"]}]}}}})
    fake.add({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-key", "namespace": "billing"},
              "type": "Opaque", "data": {"key": base64.b64encode(b"live-key-123").decode()}})
    run_id = new_run_id("k8s-clone")
    request = on_kubernetes(nginx_request(run_id, GOOD, checks=[{"type": "command", "run": "nginx -t"}]),
                            source_namespace="billing", workload="Deployment/web")

    await publish(settings, "twin.requested", request)
    [verdict] = await verdicts_of(settings, run_id)

    assert verdict["status"] == "passed", verdict["summary"]
    [warning] = [w for w in verdict["warnings"] if w["code"] == "SECRETS_PLACEHOLDERS"]
    assert "billing" in warning["message"] and "api-key" in warning["message"]
    assert b"live-key-123" not in b"".join(str(c.body).encode() for c in fake.calls)


async def test_janitor_sweeps_orphan_namespaces_of_its_own_instance_only(
    pipeline: App, settings: Settings, fake: FakeApiServer
) -> None:
    """The orphan pass lists run namespaces by label: an unknown run's namespace of this
    instance goes, another instance's namespace for the same run id stays."""
    assert pipeline.runtimes is not None and pipeline.pool is not None
    ours = pipeline.runtimes.get("kubernetes")
    other = KubernetesRuntime(settings.model_copy(update={"instance": f"other-{uuid.uuid4().hex[:8]}"}))
    run_id = new_run_id("k8s-orphan")
    limits = TwinLimits(cpus=0.5, memory_mb=128, pids=64)
    try:
        mine = await ours.create(run_id, "patchtwin/debian-nginx:12", limits=limits, ttl_s=600)
        theirs = await other.create(run_id, "patchtwin/debian-nginx:12", limits=limits, ttl_s=600)
        assert mine.name != theirs.name

        removed = await sweep(pipeline.runtimes, pipeline.pool, orphan_grace_s=0)

        assert mine.name in removed and theirs.name not in removed
        assert ("DELETE", f"/api/v1/namespaces/{mine.name}") in [(c.method, c.path) for c in fake.calls]
        assert [row["name"] for row in await other.list_ours(run_id)] == [theirs.name]
    finally:
        await other.destroy_run(run_id)
        await other.close()
