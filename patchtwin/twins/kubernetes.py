"""Twins as Kubernetes Pods (kubernetes-asyncio): one namespace per run, hardened, exec over
the websocket `v4.channel.k8s.io` protocol, teardown by deleting the namespace.

The namespace carries the run's labels and annotations (run id, owner, expiry), so the
janitor lists them by label after any crash, exactly as it lists Docker containers.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import posixpath
import shlex
import tarfile
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.stream import WsApiClient

from patchtwin.exceptions import (
    CloneFailed,
    ImageUnavailable,
    InvalidRequest,
    RuntimeUnavailable,
    TransientError,
    TwinLost,
    TwinNotReady,
    TwinStartFailed,
)
from patchtwin.settings import Settings
from patchtwin.twins import k8s_clone, k8s_manifests
from patchtwin.twins.archives import CopiedOut, archive
from patchtwin.twins.runtime import (
    DEFAULT_OUTPUT_CAP,
    DEFAULT_READ_LIMIT,
    LABEL_CREATED,
    LABEL_EXPIRES,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_RUN,
    CappedBuffer,
    ExecResult,
    Hardening,
    Helper,
    HelperResult,
    TwinLimits,
    copy_out_with_exec,
    supervise_with_exec,
)
from schemas.asset import Asset, KubernetesOptions
from schemas.events import CloneSummary, TwinRef

log = logging.getLogger("patchtwin.kubernetes")

#: Every (API group, resource, verb) this runtime calls, and nothing else. The RBAC in
#: deploy/kubernetes/ grants exactly this (a unit test compares them), and the fake API
#: server's tests check that each recorded request is one of these.
API_USE: frozenset[tuple[str, str, str]] = frozenset({
    ("", "namespaces", "create"), ("", "namespaces", "get"), ("", "namespaces", "list"),
    ("", "namespaces", "delete"),
    ("", "pods", "create"), ("", "pods", "get"), ("", "pods", "delete"), ("", "pods/exec", "create"),
    ("", "resourcequotas", "create"), ("", "limitranges", "create"),
    ("networking.k8s.io", "networkpolicies", "create"),
    # cloning: read the source namespace, write the copies
    ("", "services", "list"), ("", "services", "create"),
    ("", "configmaps", "list"), ("", "configmaps", "create"),
    ("", "secrets", "list"), ("", "secrets", "create"),
    ("apps", "deployments", "list"), ("apps", "deployments", "create"), ("apps", "deployments", "get"),
    ("apps", "statefulsets", "list"), ("apps", "statefulsets", "create"), ("apps", "statefulsets", "get"),
})

OUR_ANNOTATIONS = (LABEL_RUN, LABEL_OWNER, LABEL_INSTANCE, LABEL_CREATED, LABEL_EXPIRES)

#: Container waiting reasons that mean the image will not come.
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
#: ...and those that mean the Pod as specified cannot start.
START_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff")

STDIN, STDOUT, STDERR, ERROR = 0, 1, 2, 3
#: Longer command lines go over stdin (`argv_via_stdin`): the exec URL carries each argument.
ARGV_INLINE_LIMIT = 2048


class KubernetesRuntime:
    """A cluster as a twin runtime. `configuration` is for tests (a fake API server);
    otherwise the in-cluster service account or a kubeconfig is used, per Settings."""

    name = "kubernetes"

    def __init__(
        self, settings: Settings | None = None, *, configuration: client.Configuration | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.owner = owner or self.settings.owner
        self.instance = self.settings.instance
        self._configuration = configuration
        self._api: client.ApiClient | None = None
        self._ws: WsApiClient | None = None
        self.exec_count = 0
        self.poll_s = 0.25

    # -- clients ---------------------------------------------------------------------------

    async def _clients(self) -> tuple[client.ApiClient, WsApiClient]:
        if self._api is None or self._ws is None:
            configuration = self._configuration
            if configuration is None:
                configuration = client.Configuration()
                try:
                    if self.settings.k8s_in_cluster:
                        config.load_incluster_config(client_configuration=configuration)
                    else:
                        await config.load_kube_config(
                            config_file=self.settings.k8s_kubeconfig, context=self.settings.k8s_context,
                            client_configuration=configuration, persist_config=False,
                        )
                except Exception as exc:
                    raise RuntimeUnavailable(f"no Kubernetes configuration: {exc}") from exc
                self._configuration = configuration
            self._api = client.ApiClient(configuration)
            self._ws = WsApiClient(configuration)
        return self._api, self._ws

    async def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api((await self._clients())[0])

    async def close(self) -> None:
        for api in (self._api, self._ws):
            if api is not None:
                await api.close()
        self._api = self._ws = None

    async def ping(self) -> bool:
        try:
            await client.VersionApi((await self._clients())[0]).get_code()
            return True
        except Exception as exc:
            log.info("kubernetes API does not answer: %s", exc)
            return False

    async def image_exists(self, image: str) -> bool:
        """The cluster pulls images itself; one it cannot pull shows up as ErrImagePull while
        the twin starts, and ends the run with IMAGE_UNAVAILABLE then."""
        return bool(image)

    # The cluster's nodes get images from a registry; this runtime makes none (coded refusals).

    async def pull_image(self, image: str, tag_as: str) -> None:
        raise ImageUnavailable(f"the kubernetes runtime pulls no images: the cluster pulls {image} itself "
                               "when a twin's Pod starts")

    async def build_image(self, context: bytes, tag: str, *, labels: Mapping[str, str] | None = None) -> None:
        raise ImageUnavailable(f"the kubernetes runtime builds no images ({tag}): build it on a Docker engine, "
                               "push it to a registry the cluster pulls from, and name it in asset.image")

    async def import_rootfs(self, rootfs: AsyncIterable[bytes], tag: str, *, cmd: Sequence[str]) -> None:
        raise ImageUnavailable(f"the kubernetes runtime imports no images ({tag}): import it on a Docker "
                               "engine, push it to a registry the cluster pulls from, and name it in asset.image")

    async def run_helper(self, run_id: str, helper: Helper, *, timeout_s: float, ttl_s: int,
                         max_bytes: int) -> HelperResult:
        raise RuntimeUnavailable(f"the kubernetes runtime runs no helper containers ({helper.role}): "
                                 "use a Docker twin for this")

    # -- twins -----------------------------------------------------------------------------

    async def create(
        self, run_id: str, image: str, *, limits: TwinLimits, ttl_s: int, keep_existing: bool = False,
        hardening: Hardening | None = None, asset: Asset | None = None,
    ) -> TwinRef:
        """Makes the run's namespace (labels, Pod Security level, deny-all network policy,
        quota, limit range), clones the source namespace when asked, starts the twin Pod and
        waits until it (and every cloned workload) is ready."""
        options = (asset.kubernetes if asset is not None else None) or KubernetesOptions()
        if hardening is not None and hardening.relaxed:
            raise InvalidRequest(
                f"asset.isolation ({', '.join(hardening.relaxed)}) applies to Docker twins; a Kubernetes "
                "twin's confinement is its asset.kubernetes.profile (restricted or baseline)"
            )
        settings = self.settings
        ns = k8s_manifests.namespace_name(settings.k8s_namespace_prefix, run_id, self.instance)
        meta = k8s_manifests.RunMeta(run_id=run_id, owner=self.owner, created=datetime.now(UTC), ttl_s=ttl_s,
                                     instance=self.instance)
        runtime_class = options.runtime_class or settings.k8s_runtime_class
        if not keep_existing:
            await self._delete_namespace_and_wait(ns)
        plan: k8s_clone.ClonePlan | None = None
        if options.source_namespace is not None and options.workload is not None:
            plan = k8s_clone.plan(
                await self._read_source(options.source_namespace), source=options.source_namespace, target=ns,
                workload=options.workload, container=options.container, meta=meta, profile=options.profile,
                run_as_user=options.run_as_user, runtime_class=runtime_class, scratch_mb=settings.k8s_scratch_mb,
            )
        cloned = plan is not None
        objects = k8s_manifests.run_objects(
            ns, meta, profile=options.profile, clone=cloned,
            cpus=limits.cpus + (settings.k8s_clone_cpus if cloned else 0),
            memory_mb=limits.memory_mb + (settings.k8s_clone_memory_mb if cloned else 0),
            pods=1 + (len(plan.workloads) if plan else 0),
        )
        pod = k8s_manifests.twin_pod(
            ns, meta, image=plan.image if plan else image, limits=limits, profile=options.profile,
            run_as_user=options.run_as_user, runtime_class=runtime_class, scratch_mb=settings.k8s_scratch_mb,
            template=plan.twin_template if plan else None, container=plan.container if plan else None,
        )
        for obj in objects:
            await self._create(obj, failure=TwinStartFailed)
        for obj in plan.objects if plan else []:
            await self._create(obj, failure=CloneFailed)
        created = await self._create(pod, failure=TwinStartFailed)
        container = pod["spec"]["containers"][0]["name"] if plan is None else plan.container
        await self._wait_ready(ns, pod["metadata"]["name"], plan.workloads if plan else [])
        clone = None
        if plan is not None and options.source_namespace is not None and options.workload is not None:
            clone = CloneSummary(source_namespace=options.source_namespace, workload=options.workload,
                                 copied=plan.copied, placeholder_secrets=plan.placeholder_secrets)
        return TwinRef(
            runtime="kubernetes", id=str((created.get("metadata") or {}).get("uid") or ns), name=ns,
            image=plan.image if plan else image, namespace=ns, pod=pod["metadata"]["name"],
            container=container, clone=clone,
        )

    async def _create(self, obj: dict[str, Any], *, failure: type[TwinStartFailed | CloneFailed]) -> dict[str, Any]:
        api, _ = await self._clients()
        kind, ns = obj["kind"], obj["metadata"].get("namespace")
        core, apps, net = client.CoreV1Api(api), client.AppsV1Api(api), client.NetworkingV1Api(api)
        body: Any = obj  # the generated client takes plain dicts as well as its models
        calls = {
            "Namespace": lambda: core.create_namespace(body),
            "Pod": lambda: core.create_namespaced_pod(ns, body),
            "ResourceQuota": lambda: core.create_namespaced_resource_quota(ns, body),
            "LimitRange": lambda: core.create_namespaced_limit_range(ns, body),
            "NetworkPolicy": lambda: net.create_namespaced_network_policy(ns, body),
            "Service": lambda: core.create_namespaced_service(ns, body),
            "ConfigMap": lambda: core.create_namespaced_config_map(ns, body),
            "Secret": lambda: core.create_namespaced_secret(ns, body),
            "Deployment": lambda: apps.create_namespaced_deployment(ns, body),
            "StatefulSet": lambda: apps.create_namespaced_stateful_set(ns, body),
        }
        try:
            result = await calls[kind]()
        except ApiException as exc:
            raise _api_error(exc, f"create {kind} {obj['metadata']['name']}", failure) from exc
        except aiohttp.ClientError as exc:
            raise TransientError(f"kubernetes API unreachable: {exc}") from exc
        return dict(api.sanitize_for_serialization(result))

    async def _read_source(self, source: str) -> dict[str, list[dict[str, Any]]]:
        """The source namespace's objects of each cloned kind, as API JSON."""
        api, _ = await self._clients()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        listing = {
            "Deployment": apps.list_namespaced_deployment, "StatefulSet": apps.list_namespaced_stateful_set,
            "Service": core.list_namespaced_service, "ConfigMap": core.list_namespaced_config_map,
            "Secret": core.list_namespaced_secret,
        }
        objects: dict[str, list[dict[str, Any]]] = {}
        for kind, list_fn in listing.items():
            try:
                result: Any = await list_fn(source)
            except ApiException as exc:
                raise _api_error(exc, f"list {kind}s in {source}", CloneFailed) from exc
            except aiohttp.ClientError as exc:
                raise TransientError(f"kubernetes API unreachable: {exc}") from exc
            objects[kind] = [dict(api.sanitize_for_serialization(item)) for item in result.items]
        return objects

    async def _wait_ready(self, ns: str, pod: str, workloads: list[tuple[str, str]]) -> None:
        """Until the twin Pod is Ready and each cloned workload has all its replicas ready;
        bounded by `k8s_ready_timeout_s`. A Pod that cannot pull its image or start fails at once."""
        api, _ = await self._clients()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        deadline = time.monotonic() + self.settings.k8s_ready_timeout_s
        waiting = ""
        while time.monotonic() < deadline:
            try:
                status = (await core.read_namespaced_pod(pod, ns)).status
            except ApiException as exc:
                raise _api_error(exc, f"read Pod {ns}/{pod}", TwinStartFailed) from exc
            for container in status.container_statuses or []:
                reason = container.state.waiting.reason if container.state and container.state.waiting else None
                message = (container.state.waiting.message or "") if reason else ""
                if reason in IMAGE_REASONS:
                    raise ImageUnavailable(f"the cluster cannot pull {container.image}: {reason} {message}".strip())
                if reason in START_REASONS:
                    raise TwinStartFailed(f"twin container {container.name} cannot start: {reason} {message}".strip())
            if status.phase in ("Failed", "Succeeded"):
                raise TwinStartFailed(f"twin Pod {ns}/{pod} ended ({status.phase}): {status.message or status.reason}")
            ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
            if ready:
                pending = [f"{kind}/{name}" for kind, name in workloads
                           if not await self._workload_ready(apps, kind, ns, name)]
                if not pending:
                    return
                waiting = "cloned workloads not ready: " + ", ".join(pending)
            else:
                waiting = f"twin Pod {ns}/{pod} is {status.phase}, not Ready"
            await asyncio.sleep(self.poll_s)
        if waiting.startswith("cloned"):
            raise CloneFailed(f"{waiting} after {self.settings.k8s_ready_timeout_s:g}s")
        raise TwinNotReady(f"{waiting} after {self.settings.k8s_ready_timeout_s:g}s")

    async def _workload_ready(self, apps: client.AppsV1Api, kind: str, ns: str, name: str) -> bool:
        read = apps.read_namespaced_deployment if kind == "Deployment" else apps.read_namespaced_stateful_set
        try:
            workload = await read(name, ns)
        except ApiException as exc:
            raise _api_error(exc, f"read {kind} {ns}/{name}", CloneFailed) from exc
        wanted = workload.spec.replicas if workload.spec.replicas is not None else 1
        return (workload.status.ready_replicas or 0) >= wanted if workload.status else False

    # -- exec ------------------------------------------------------------------------------

    async def exec(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        user: str = "",
        grace_s: float = 5.0,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Runs argv in the twin's container, killed inside at `timeout_s` (`timeout -s KILL`);
        if the exec has not ended `grace_s` later, the Pod is deleted: the real kill."""
        ns, pod, container = _where(twin)
        if stdin is None and sum(len(arg) for arg in argv) > ARGV_INLINE_LIMIT:
            argv, stdin = argv_via_stdin(argv)
        wrapped = ["timeout", "-s", "KILL", f"{max(timeout_s, 0.1):.3f}", *argv]
        if user:
            wrapped = ["runuser", "-u", user, "--", *wrapped]
        self.exec_count += 1
        _, ws_client = await self._clients()
        out, err = CappedBuffer(output_cap), CappedBuffer(output_cap)
        status: dict[str, Any] = {}
        started = time.monotonic()

        async def pump() -> None:
            kwargs: dict[str, Any] = {"command": wrapped, "stdout": True, "stderr": True, "stdin": stdin is not None,
                                      "tty": False, "_preload_content": False}
            if container:
                kwargs["container"] = container
            connecting: Any = await client.CoreV1Api(ws_client).connect_get_namespaced_pod_exec(pod, ns, **kwargs)
            async with connecting as socket:
                if stdin is not None:
                    for offset in range(0, len(stdin), 32 * 1024):
                        await socket.send_bytes(bytes([STDIN]) + stdin[offset:offset + 32 * 1024])
                async for message in socket:
                    if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                        break
                    data = message.data if isinstance(message.data, bytes) else message.data.encode()
                    if not data:
                        continue
                    channel, payload = data[0], data[1:]
                    if channel == STDOUT:
                        out.add(payload)
                    elif channel == STDERR:
                        err.add(payload)
                    elif channel == ERROR and payload:
                        status.update(json.loads(payload))

        timed_out = False
        try:
            await asyncio.wait_for(pump(), timeout=timeout_s + grace_s)
        except TimeoutError:
            timed_out = True
            await self._kill(ns, pod)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (404, 400):
                raise TwinLost(f"twin {ns}/{pod} is gone or not running: {exc.status} {exc.message}") from exc
            if exc.status >= 500 or exc.status == 429:
                raise TransientError(f"kubernetes exec: {exc.status} {exc.message}") from exc
            raise RuntimeUnavailable(f"kubernetes exec refused: {exc.status} {exc.message}") from exc
        except aiohttp.ClientError as exc:
            raise TransientError(f"kubernetes API unreachable: {exc}") from exc
        duration = time.monotonic() - started
        exit_code = None if timed_out else _exit_code(status, ns, pod)
        # `timeout -s KILL` exits 137 when the deadline killed the command.
        timed_out = timed_out or (exit_code == 137 and duration >= timeout_s - 0.05)
        return ExecResult(exit_code=exit_code, stdout=out.data(), stderr=err.data(), stdout_bytes=out.total,
                          stderr_bytes=err.total, duration_s=duration, timed_out=timed_out,
                          truncated=out.cut or err.cut)

    async def _kill(self, ns: str, pod: str) -> None:
        try:
            await (await self._core()).delete_namespaced_pod(pod, ns, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def put_file(self, twin: TwinRef | str, path: str, content: bytes, mode: int = 0o644) -> None:
        """Copies a file in as a tar stream over exec stdin (what `kubectl cp` does). The
        websocket protocol cannot close stdin, so `head -c` reads exactly the archive."""
        data = archive([(path, content, mode)])
        parent = posixpath.dirname(posixpath.normpath(path))
        script = f"mkdir -p {shlex.quote(parent)} && head -c {len(data)} | tar -x -p -m -o -C / -f -"
        result = await self.exec(twin, ["sh", "-c", script], timeout_s=60, stdin=data)
        if result.exit_code != 0:
            raise TwinLost(f"cannot copy {path} into the twin: exit {result.exit_code}: "
                           f"{result.stderr.decode(errors='replace')[:300]}")

    async def put_files(self, twin: TwinRef | str, files: Sequence[tuple[str, bytes, int]]) -> None:
        for path, content, mode in files:
            await self.put_file(twin, path, content, mode)

    async def read_file(self, twin: TwinRef | str, path: str, limit: int = DEFAULT_READ_LIMIT) -> bytes | None:
        """A regular file's first `limit` bytes, or None when it is not there."""
        script = 'test -f "$1" || exit 3; head -c "$2" "$1"'
        result = await self.exec(twin, ["sh", "-c", script, "read", path, str(limit)], timeout_s=30,
                                 output_cap=limit)
        return result.stdout if result.exit_code == 0 else None

    async def run_supervised(
        self,
        twin: TwinRef | str,
        argv: Sequence[str],
        *,
        timeout_s: float,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        user: str = "",
        grace_s: float = 5.0,
        files: Sequence[tuple[str, bytes, int]] = (),
    ) -> ExecResult:
        return await supervise_with_exec(self, twin, argv, timeout_s=timeout_s, output_cap=output_cap, user=user,
                                         grace_s=grace_s, files=files)

    async def copy_out(self, twin: TwinRef | str, path: str, *, max_bytes: int = DEFAULT_READ_LIMIT) -> CopiedOut:
        """Files at `path` as a tar over exec stdout (`copy_out_with_exec`)."""
        return await copy_out_with_exec(self.exec, twin, path, max_bytes=max_bytes)

    # -- teardown and listing --------------------------------------------------------------

    async def destroy(self, name: str) -> bool:
        """Deletes a run's namespace and so everything in it. False when there was none."""
        try:
            await (await self._core()).delete_namespace(name, propagation_policy="Background")
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 409:  # already terminating
                return True
            raise _api_error(exc, f"delete namespace {name}", TwinStartFailed) from exc

    async def _delete_namespace_and_wait(self, ns: str) -> None:
        """A leftover of an interrupted attempt is removed before the namespace is made again."""
        core = await self._core()
        if not await self.destroy(ns):
            return
        deadline = time.monotonic() + self.settings.k8s_ready_timeout_s
        while time.monotonic() < deadline:
            try:
                await core.read_namespace(ns)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            await asyncio.sleep(self.poll_s)
        raise TwinStartFailed(f"namespace {ns} of an earlier attempt is still terminating")

    async def list_ours(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Run namespaces carrying our owner label (and the run's, when given), reported with
        the same keys as Docker twins' labels (run id and expiry come from annotations)."""
        core = await self._core()
        try:
            selector = k8s_manifests.owner_selector(self.owner, self.instance, run_id)
            found = await core.list_namespace(label_selector=selector)
        except aiohttp.ClientError as exc:
            raise TransientError(f"kubernetes API unreachable: {exc}") from exc
        rows = []
        for item in found.items:
            annotations = item.metadata.annotations or {}
            labels = {**(item.metadata.labels or {}),
                      **{k: v for k, v in annotations.items() if k in OUR_ANNOTATIONS}}
            if run_id is not None and labels.get(LABEL_RUN) != run_id:
                continue  # a hash collision of the run label: not this run's
            rows.append({"id": item.metadata.uid or item.metadata.name, "name": item.metadata.name,
                         "labels": labels, "state": item.status.phase if item.status else None})
        return rows

    async def destroy_run(self, run_id: str) -> list[str]:
        names = [row["name"] for row in await self.list_ours(run_id)]
        for name in names:
            await self.destroy(name)
        return names


def argv_via_stdin(argv: Sequence[str]) -> tuple[list[str], bytes]:
    """A long command line (a whole probe suite) would make the exec URL too long for API
    servers and proxies; its arguments travel as a tar on stdin instead, and a small `sh`
    loader rebuilds them byte for byte and `exec`s the command (its own stdin /dev/null)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for index, arg in enumerate(argv):
            data = arg.encode()
            info = tarfile.TarInfo(str(index))
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    lines = ["d=$(mktemp -d) || exit 126", f'head -c {len(archive)} | tar -x -o -C "$d" -f - || exit 126']
    lines += [f'a{i}=$(cat "$d/{i}"; printf x); a{i}=${{a{i}%x}}' for i in range(len(argv))]
    lines += ['rm -rf "$d"', "exec " + " ".join(f'"$a{i}"' for i in range(len(argv))) + " </dev/null"]
    return ["sh", "-c", "\n".join(lines)], archive


def _where(twin: TwinRef | str) -> tuple[str, str, str | None]:
    if isinstance(twin, TwinRef):
        return twin.namespace or twin.name, twin.pod or k8s_manifests.TWIN_POD, twin.container
    return twin, k8s_manifests.TWIN_POD, None


def _exit_code(status: dict[str, Any], ns: str, pod: str) -> int:
    """The exit code from the error channel's Status (`Success`, or `NonZeroExitCode` with
    the code in `details.causes[reason=ExitCode]`)."""
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", "1"))
    if not status:
        raise TwinLost(f"the exec in {ns}/{pod} ended without a status: the twin went away")
    raise TwinLost(f"the exec in {ns}/{pod} failed: {status.get('message') or status}")


def _api_error(exc: ApiException, doing: str, failure: type[TwinStartFailed | CloneFailed]) -> Exception:
    status = exc.status or 0
    try:
        reason = json.loads(exc.body or "{}").get("message") or exc.reason
    except (ValueError, AttributeError):
        reason = exc.reason
    message = f"kubernetes: {doing}: {status} {reason}"
    if status >= 500 or status == 429 or status == 0:
        return TransientError(message)
    if status in (401, 403) and "PodSecurity" not in str(reason) and "quota" not in str(reason):
        return RuntimeUnavailable(message + " (check patchtwin's RBAC in deploy/kubernetes/)")
    if status == 404 and failure is TwinStartFailed and doing.startswith(("read Pod", "exec")):
        return TwinLost(message)
    return failure(message)
