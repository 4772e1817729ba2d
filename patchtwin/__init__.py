"""patchtwin: test a patch on a disposable twin of a host before it reaches production.

The public surface is small and cheap to import: the settings and the exception tree.
The layers live in subpackages, each importing only the ones below it:

    patchtwin.cli            the composition root: app (all services), commands, client, demo
    patchtwin.checks         the probe engine (baseline and after)
    patchtwin.twins          twin runtimes (docker, kubernetes), platforms, images, snapshots
    patchtwin.core           bus, inbox / run ledger / outbox, store, retry
    patchtwin.observability  telemetry, logs, HTTP endpoints, samplers
    patchtwin.settings, patchtwin.exceptions

Services (`services/`) use this package; it never imports them, except the composition root.
"""

from patchtwin.exceptions import (
    ImageUnavailable,
    InvalidRequest,
    PatchtwinError,
    TransientError,
    TwinError,
)
from patchtwin.settings import Settings, get_settings

__all__ = [
    "ImageUnavailable",
    "InvalidRequest",
    "PatchtwinError",
    "Settings",
    "TransientError",
    "TwinError",
    "get_settings",
]
__version__ = "0.1.0"
