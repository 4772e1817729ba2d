"""Twin runtimes. Docker is the default; each offers create, exec, put_file, destroy, list."""

from patchtwin.runtime.docker import DockerRuntime, ExecResult, TwinLimits, twin_name

__all__ = ["DockerRuntime", "ExecResult", "TwinLimits", "twin_name"]
