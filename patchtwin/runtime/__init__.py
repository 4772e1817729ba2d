"""Twin runtimes behind one interface (`base.TwinRuntime`); Docker is the default."""

from patchtwin.runtime.base import DEFAULT_CAPABILITIES, CappedBuffer, ExecResult, Hardening, TwinLimits, TwinRuntime
from patchtwin.runtime.docker import CopiedOut, DockerRuntime, twin_name
from patchtwin.runtime.registry import Runtimes

__all__ = [
    "DEFAULT_CAPABILITIES", "CappedBuffer", "CopiedOut", "DockerRuntime", "ExecResult", "Hardening", "Runtimes",
    "TwinLimits", "TwinRuntime", "twin_name",
]
