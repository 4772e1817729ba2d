"""Twin runtimes. Docker is the default; each offers create, exec, put_file, destroy, list."""

from patchtwin.runtime.docker import CopiedOut, DockerRuntime, ExecResult, Hardening, TwinLimits, twin_name

__all__ = ["CopiedOut", "DockerRuntime", "ExecResult", "Hardening", "TwinLimits", "twin_name"]
