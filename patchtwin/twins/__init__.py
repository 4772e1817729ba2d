"""Twin runtimes behind one interface (`runtime.TwinRuntime`); Docker is the default."""

from patchtwin.twins.archives import CopiedOut
from patchtwin.twins.docker import DockerRuntime, twin_name
from patchtwin.twins.registry import Runtimes
from patchtwin.twins.runtime import DEFAULT_CAPABILITIES, CappedBuffer, ExecResult, Hardening, TwinLimits, TwinRuntime

__all__ = [
    "DEFAULT_CAPABILITIES", "CappedBuffer", "CopiedOut", "DockerRuntime", "ExecResult", "Hardening", "Runtimes",
    "TwinLimits", "TwinRuntime", "twin_name",
]
