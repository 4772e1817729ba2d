"""The runtimes a process can use, by name: the provisioner picks one per request, later
stages find the twin's own again from `TwinRef.runtime`, the janitor sweeps them all."""

from __future__ import annotations

from collections.abc import Iterable

from patchtwin.exceptions import RuntimeUnavailable
from patchtwin.settings import Settings
from patchtwin.twins.runtime import TwinRuntime
from schemas.events import TwinRef


class Runtimes:
    def __init__(self, runtimes: Iterable[TwinRuntime], default: str = "docker") -> None:
        self._by_name = {runtime.name: runtime for runtime in runtimes}
        self.default = default

    @classmethod
    def wrap(cls, runtimes: Runtimes | TwinRuntime) -> Runtimes:
        """Accepts one runtime where a set is expected (tests, single-runtime tools)."""
        return runtimes if isinstance(runtimes, Runtimes) else cls([runtimes], default=runtimes.name)

    def get(self, name: str | None = None) -> TwinRuntime:
        """The runtime named (the default when None); a coded error when this process has none."""
        key = name or self.default
        try:
            return self._by_name[key]
        except KeyError:
            have = ", ".join(sorted(self._by_name)) or "none"
            raise RuntimeUnavailable(
                f"runtime {key!r} is not configured in this process (configured: {have})"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtimes:
        """The runtimes `settings.runtimes` names; Kubernetes is imported only when asked for."""
        made: list[TwinRuntime] = []
        for name in dict.fromkeys(settings.runtimes):
            if name == "docker":
                from patchtwin.twins.docker import DockerRuntime

                made.append(DockerRuntime(settings.docker_url, owner=settings.owner, instance=settings.instance))
            elif name == "kubernetes":
                from patchtwin.twins.kubernetes import KubernetesRuntime

                made.append(KubernetesRuntime(settings))
        return cls(made, default=settings.default_runtime)

    def for_twin(self, twin: TwinRef) -> TwinRuntime:
        return self.get(twin.runtime)

    def all(self) -> list[TwinRuntime]:
        return list(self._by_name.values())

    def names(self) -> list[str]:
        return sorted(self._by_name)

    async def close(self) -> None:
        for runtime in self._by_name.values():
            await runtime.close()
