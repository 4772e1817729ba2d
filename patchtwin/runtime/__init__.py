"""Twin runtimes behind one interface (`base.TwinRuntime`); Docker is the default."""

from patchtwin.runtime.base import CappedBuffer, ExecResult, TwinLimits, TwinRuntime
from patchtwin.runtime.docker import DockerRuntime, twin_name
from patchtwin.runtime.registry import Runtimes

__all__ = ["CappedBuffer", "DockerRuntime", "ExecResult", "Runtimes", "TwinLimits", "TwinRuntime", "twin_name"]
