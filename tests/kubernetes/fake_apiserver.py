"""An in-process Kubernetes API server (aiohttp) for the runtime's tests: no cluster can run
on these machines.

It records every request (method, path, query, body) and answers the way the real API
server does for the calls patchtwin makes: object CRUD with `Status` errors (404, 409, 422,
403 for Pod Security violations), label selectors, namespace deletion that goes through
`Terminating` and takes everything in it, and exec over a websocket speaking
`v4.channel.k8s.io` (stdin 0, stdout 1, stderr 2, error/status 3).

Pods of the twin are *backed by real Docker containers* (`DockerPods`): the Pod's image,
command, user, capabilities, read-only root filesystem, memory/CPU limits and emptyDir
mounts become the container's, its network is `none`, and exec runs in it. What it does not
do: no scheduler, kubelet, controllers or networking. Deployments and StatefulSets get no
Pods; their status reports every replica ready at once (`workloads_ready=False` keeps them
unready). Pod Security Admission is checked for the `restricted` and `baseline` rules that
patchtwin's manifests touch, not the whole standard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiodocker
from aiodocker.exceptions import DockerError
from aiohttp import WSMsgType, web

FAKE_LABEL = "io.patchtwin.k8s-fake"
#: `GET /version` as an API server answers it: every field, for the client's VersionInfo requires them all.
VERSION = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.0-patchtwin-fake", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
    "platform": "linux/amd64",
}
RESOURCE_KINDS = {
    "namespaces": "Namespace", "pods": "Pod", "services": "Service", "configmaps": "ConfigMap",
    "secrets": "Secret", "resourcequotas": "ResourceQuota", "limitranges": "LimitRange",
    "networkpolicies": "NetworkPolicy", "deployments": "Deployment", "statefulsets": "StatefulSet",
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any

    @property
    def group(self) -> str:
        return "" if self.path.startswith("/api/") else self.path.split("/")[2]

    @property
    def resource(self) -> str:
        """The RBAC resource (`pods/exec` for exec), from the path."""
        parts = self.path.strip("/").split("/")
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if rest and rest[0] == "namespaces" and len(rest) >= 3:
            rest = rest[2:]
        return "/".join([rest[0], *rest[2:3]]) if rest else ""

    @property
    def verb(self) -> str:
        """The RBAC verb the real API server would authorize this request with."""
        if self.resource.endswith("/exec"):
            return "create"  # websocket GET upgrades are authorized as create since 1.30
        parts = self.path.strip("/").split("/")
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if rest and rest[0] == "namespaces" and len(rest) >= 3:
            rest = rest[2:]
        item = len(rest) >= 2
        return {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}.get(
            self.method, "get" if item else "list")


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.json_response(body, status=code)


def selects(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def pod_security_violations(pod: dict[str, Any], level: str) -> list[str]:
    """The Pod Security Standards checks of `baseline` and `restricted` that apply to the
    fields patchtwin sets (privilege, host namespaces, hostPath, capabilities, seccomp, user)."""
    spec = pod.get("spec") or {}
    pod_context = spec.get("securityContext") or {}
    problems = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            problems.append(f"{key}=true")
    if any("hostPath" in v for v in spec.get("volumes") or []):
        problems.append("hostPath volumes")
    for container in spec.get("containers") or []:
        context = container.get("securityContext") or {}
        name = container.get("name")
        if context.get("privileged"):
            problems.append(f"privileged (container {name!r})")
        added = set((context.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPS:
            problems.append(f"non-default capabilities (container {name!r} must not include "
                            f"{', '.join(sorted(added - BASELINE_CAPS))})")
        if level != "restricted":
            continue
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"allowPrivilegeEscalation != false (container {name!r})")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            problems.append(f"unrestricted capabilities (container {name!r} must drop ALL)")
        if added - {"NET_BIND_SERVICE"}:
            problems.append(f"unrestricted capabilities (container {name!r} may only add NET_BIND_SERVICE)")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"runAsNonRoot != true (container {name!r})")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"runAsUser=0 (container {name!r})")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"seccompProfile (container {name!r} must set RuntimeDefault or Localhost)")
    return problems


class DockerPods:
    """Runs each twin Pod as a Docker container, built from the Pod spec."""

    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        self.docker = aiodocker.Docker()

    async def close(self) -> None:
        ours = {"label": [f"{FAKE_LABEL}={self.server_id}"]}
        for container in await self.docker.containers.list(all=True, filters=ours):
            with contextlib.suppress(DockerError):
                await container.delete(force=True)
        await self.docker.close()

    def name(self, ns: str, pod: str) -> str:
        return f"k8sfake-{self.server_id}-{ns}-{pod}"[:120]

    async def start(self, ns: str, pod: dict[str, Any]) -> dict[str, Any]:
        """Starts the Pod's first container; returns the Pod status to report."""
        spec = pod["spec"]
        main = spec["containers"][0]
        image = main["image"]
        try:
            image_id = (await self.docker.images.inspect(image))["Id"]
        except DockerError:
            return {"phase": "Pending", "containerStatuses": [{
                "name": main["name"], "image": image, "imageID": "", "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull",
                                      "message": f"failed to pull image {image!r}: not found"}}}]}
        context = main.get("securityContext") or {}
        pod_context = spec.get("securityContext") or {}
        limits = (main.get("resources") or {}).get("limits") or {}
        sizes = {v["name"]: (v.get("emptyDir") or {}).get("sizeLimit") for v in spec.get("volumes") or []
                 if "emptyDir" in v}
        tmpfs = {}
        for mount in main.get("volumeMounts") or []:
            if mount["name"] in sizes:
                size = sizes[mount["name"]]
                tmpfs[mount["mountPath"]] = f"size={_bytes(size)},mode=1777,exec" if size else "mode=1777,exec"
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        host: dict[str, Any] = {
            "NetworkMode": "none",
            "CapDrop": (context.get("capabilities") or {}).get("drop") or [],
            "CapAdd": (context.get("capabilities") or {}).get("add") or [],
            "ReadonlyRootfs": bool(context.get("readOnlyRootFilesystem")),
            "Tmpfs": tmpfs,
            "Init": True,
        }
        if context.get("allowPrivilegeEscalation") is False:
            host["SecurityOpt"] = ["no-new-privileges"]
        if "memory" in limits:
            host["Memory"] = _bytes(limits["memory"])
        if "cpu" in limits:
            host["NanoCpus"] = int(_cpus(limits["cpu"]) * 1e9)
        config: dict[str, Any] = {
            "Image": image, "Hostname": spec.get("hostname") or pod["metadata"]["name"],
            "Labels": {FAKE_LABEL: self.server_id}, "HostConfig": host,
        }
        if main.get("command"):
            config["Entrypoint"] = main["command"]
        if main.get("args"):
            config["Cmd"] = main["args"]
        if user is not None:
            config["User"] = str(user)
        env = [f"{e['name']}={e.get('value', '')}" for e in main.get("env") or [] if "name" in e]
        if env:
            config["Env"] = env
        container = await self.docker.containers.create(config=config, name=self.name(ns, pod["metadata"]["name"]))
        await container.start()
        now = datetime.now(UTC).isoformat()
        return {"phase": "Running", "startTime": now,
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                               for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                "containerStatuses": [{"name": main["name"], "image": image, "imageID": image_id,
                                       "containerID": f"docker://{container.id}", "ready": True, "restartCount": 0,
                                       "started": True, "state": {"running": {"startedAt": now}}}]}

    async def stop(self, ns: str, pod: str) -> None:
        with contextlib.suppress(DockerError):
            await self.docker.containers.container(self.name(ns, pod)).delete(force=True)

    async def exec(self, ns: str, pod: str, argv: list[str], stdin: asyncio.Queue[bytes | None],
                   emit: Callable[[int, bytes], Any], with_stdin: bool) -> int:
        container = self.docker.containers.container(self.name(ns, pod))
        execution = await container.exec(argv, stdout=True, stderr=True, stdin=with_stdin)
        async with execution.start(detach=False, timeout=None) as stream:

            async def feed() -> None:
                while (chunk := await stdin.get()) is not None:
                    await stream.write_in(chunk)

            feeder = asyncio.create_task(feed()) if with_stdin else None
            try:
                while (message := await stream.read_out()) is not None:
                    await emit(message.stream, message.data)
            finally:
                if feeder is not None:
                    feeder.cancel()
        info = await execution.inspect()
        return int(info.get("ExitCode") or 0)


@dataclass
class FakeApiServer:
    """`await start()` gives the base URL; `calls` is every request, in order."""

    workloads_ready: bool = True
    calls: list[Call] = field(default_factory=list)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    terminate_after_s: float = 0.1

    def __post_init__(self) -> None:
        self.pods = DockerPods(self.id)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.pods.close()

    # -- helpers for tests ---------------------------------------------------------------

    def sent(self, kind: str) -> list[dict[str, Any]]:
        """Bodies of every create of this kind, as sent."""
        return [c.body for c in self.calls if c.method == "POST" and isinstance(c.body, dict)
                and c.body.get("kind") == kind]

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Puts an object in place as if the cluster had it (a source namespace to clone)."""
        stored = self._stamp(json.loads(json.dumps(obj)), obj.get("metadata", {}).get("namespace", ""))
        self.objects[(RESOURCE_OF[obj["kind"]], stored["metadata"].get("namespace", ""),
                      stored["metadata"]["name"])] = stored
        return stored

    # -- the API -----------------------------------------------------------------------

    def _stamp(self, obj: dict[str, Any], ns: str) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(len(self.calls) + 1),
                    creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if obj.get("kind") != "Namespace":
            meta["namespace"] = ns
        return obj

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return status(400, "BadRequest", "the body is not JSON")
        self.calls.append(Call(request.method, request.path, list(request.query.items()), body))
        if request.path in ("/version", "/version/"):  # kubernetes_asyncio's VersionApi asks for `/version/`
            return web.json_response(VERSION)
        parts = request.path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
            rest = parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            rest = parts[3:]
        else:
            return status(404, "NotFound", f"the server could not find the requested resource {request.path}")
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
        if resource not in RESOURCE_KINDS:
            return status(404, "NotFound", f"the server could not find the requested resource ({resource})")
        if sub == "exec" and resource == "pods" and name:
            return await self._exec(request, ns, name)
        if request.method == "POST" and name is None:
            return await self._create(resource, ns, body)
        if request.method == "GET" and name is None:
            return self._list(resource, ns, request.query.get("labelSelector", ""))
        if request.method == "GET" and name:
            found = self.objects.get((resource, ns, name))
            if found is None:
                return status(404, "NotFound", f'{resource} "{name}" not found')
            return web.json_response(found)
        if request.method == "DELETE" and name:
            return await self._delete(resource, ns, name)
        return status(405, "MethodNotAllowed", f"{request.method} is not supported by the fake")

    async def _create(self, resource: str, ns: str, body: Any) -> web.Response:
        kind = RESOURCE_KINDS[resource]
        if not isinstance(body, dict) or body.get("kind") != kind:
            return status(400, "BadRequest", f"expected a {kind}")
        name = (body.get("metadata") or {}).get("name", "")
        pattern = DNS_LABEL if resource in ("namespaces", "services") else DNS_SUBDOMAIN
        if not pattern.match(name):
            return status(422, "Invalid", f'{kind} "{name}" is invalid: metadata.name: Invalid value')
        if resource != "namespaces":
            namespace = self.objects.get(("namespaces", "", ns))
            if namespace is None:
                return status(404, "NotFound", f'namespaces "{ns}" not found')
            if namespace["status"]["phase"] == "Terminating":
                return status(403, "Forbidden", f'{resource} "{name}" is forbidden: unable to create new content '
                              f"in namespace {ns} because it is being terminated")
        if (resource, ns, name) in self.objects:
            return status(409, "AlreadyExists", f'{resource} "{name}" already exists')
        obj = self._stamp(json.loads(json.dumps(body)), ns)
        if resource == "namespaces":
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj["status"] = {"phase": "Active"}
        if resource == "pods":
            labels = self.objects[("namespaces", "", ns)]["metadata"].get("labels") or {}
            level = labels.get("pod-security.kubernetes.io/enforce", "privileged")
            problems = pod_security_violations(obj, level) if level in ("baseline", "restricted") else []
            if problems:
                return status(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity '
                              f'"{level}:latest": {"; ".join(problems)}')
            obj["status"] = await self.pods.start(ns, obj)
        if resource in ("deployments", "statefulsets"):
            replicas = (obj.get("spec") or {}).get("replicas", 1)
            ready = replicas if self.workloads_ready else 0
            obj["status"] = {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}
        if resource == "services":
            obj.setdefault("spec", {})["clusterIP"] = f"10.96.0.{len(self.objects) % 250 + 2}"
        self.objects[(resource, ns, name)] = obj
        return web.json_response(obj, status=201)

    def _list(self, resource: str, ns: str, selector: str) -> web.Response:
        items = [o for (r, n, _), o in self.objects.items()
                 if r == resource and (n == ns or resource == "namespaces")
                 and selects(selector, o["metadata"].get("labels") or {})]
        return web.json_response({"kind": f"{RESOURCE_KINDS[resource]}List", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(len(self.calls))}, "items": items})

    async def _delete(self, resource: str, ns: str, name: str) -> web.Response:
        found = self.objects.get((resource, ns, name))
        if found is None:
            return status(404, "NotFound", f'{resource} "{name}" not found')
        if resource == "namespaces":
            if found["status"]["phase"] != "Terminating":
                found["status"]["phase"] = "Terminating"
                task = asyncio.create_task(self._finish_namespace(name))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return web.json_response(found)
        del self.objects[(resource, ns, name)]
        if resource == "pods":
            await self.pods.stop(ns, name)
        return web.json_response(found)

    async def _finish_namespace(self, name: str) -> None:
        await asyncio.sleep(self.terminate_after_s)
        for key in [k for k in self.objects if k[1] == name]:
            if key[0] == "pods":
                await self.pods.stop(name, key[2])
            del self.objects[key]
        self.objects.pop(("namespaces", "", name), None)

    async def _exec(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        pod = self.objects.get(("pods", ns, name))
        if pod is None:
            return status(404, "NotFound", f'pods "{name}" not found')
        if pod["status"].get("phase") != "Running":
            return status(400, "BadRequest", f"pod {name} is not running")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if "v4.channel.k8s.io" not in offered:
            return status(400, "BadRequest", "exec needs the v4.channel.k8s.io subprotocol")
        argv = request.query.getall("command", [])
        truthy = ("1", "t", "T", "true", "TRUE", "True")
        with_stdin = request.query.get("stdin", "false") in truthy
        container = request.query.get("container")
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container is not None and container not in names:
            return status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        socket = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await socket.prepare(request)
        stdin: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def emit(channel: int, data: bytes) -> None:
            await socket.send_bytes(bytes([channel]) + data)

        async def read_stdin() -> None:
            async for message in socket:
                if message.type == WSMsgType.BINARY and message.data and message.data[0] == 0:
                    await stdin.put(message.data[1:])
            await stdin.put(None)

        reader = asyncio.create_task(read_stdin())
        try:
            code = await self.pods.exec(ns, name, argv, stdin, emit, with_stdin)
            if code == 0:
                result: dict[str, Any] = {"metadata": {}, "status": "Success"}
            else:
                result = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                          "message": f"command terminated with non-zero exit code: error executing command "
                                     f"{argv}, exit code {code}",
                          "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
            await emit(3, json.dumps(result).encode())
        except DockerError as exc:
            with contextlib.suppress(Exception):
                await emit(3, json.dumps({"metadata": {}, "status": "Failure", "reason": "InternalError",
                                          "message": f"container not found ({exc.message})"}).encode())
        finally:
            reader.cancel()
            await socket.close()
        return socket


RESOURCE_OF = {kind: resource for resource, kind in RESOURCE_KINDS.items()}


def _bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


def _cpus(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
