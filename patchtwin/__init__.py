"""patchtwin: test a patch on a disposable twin of a host before it reaches production."""

from patchtwin.app import SERVICES, App
from patchtwin.exceptions import (
    ImageUnavailable,
    InvalidRequest,
    PatchtwinError,
    TransientError,
    TwinError,
)
from patchtwin.settings import Settings, get_settings

__all__ = [
    "SERVICES",
    "App",
    "ImageUnavailable",
    "InvalidRequest",
    "PatchtwinError",
    "Settings",
    "TransientError",
    "TwinError",
    "get_settings",
]
__version__ = "0.1.0"
