"""Tar archives in and out of a twin, whatever the runtime: files copied in as one archive,
and what comes out read as hostile (no link followed, nothing written to disk, capped)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CopiedOut:
    """Files read out of a twin: regular files only, by their path inside the archive.
    `refused` names members that were not read (links, devices, absolute or `..` paths)."""

    files: dict[str, bytes]
    refused: list[str]
    truncated: bool


def read_archive(data: bytes, *, max_bytes: int, max_members: int = 10_000) -> CopiedOut:
    """Reads a tar that came out of a twin as hostile: nothing is written to disk and no link
    is followed; a member is kept only when it is a regular file under a relative path without
    `..`; the content kept is at most `max_bytes` in all."""
    files: dict[str, bytes] = {}
    refused: list[str] = []
    truncated = False
    kept = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for count, member in enumerate(tar):
                if count >= max_members:
                    truncated = True
                    break
                name = member.name
                parts = name.split("/")
                if member.isdir() and name.strip("/") in ("", "."):
                    continue
                if name.startswith("/") or "\\" in name or ".." in parts or not name.strip("/."):
                    refused.append(name)
                    continue
                if member.isdir():
                    continue
                if not member.isreg():
                    refused.append(name)
                    continue
                room = max_bytes - kept
                if member.size > room:
                    truncated = True
                stream = tar.extractfile(member)
                content = stream.read(max(room, 0)) if stream is not None else b""
                files["/".join(p for p in parts if p not in ("", "."))] = content
                kept += len(content)
    except (tarfile.TarError, EOFError):
        truncated = True  # the archive was cut (our cap) or is malformed: keep what was read
    return CopiedOut(files=files, refused=refused, truncated=truncated)


def archive(files: Sequence[tuple[str, bytes, int]], folders: Sequence[tuple[str, int]] = ()) -> bytes:
    """A tar of files (absolute path, content, mode) to unpack at `/`. Folder entries only for
    `folders` (path, mode): an entry resets an existing folder's owner and mode."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, mode in folders:
            folder = tarfile.TarInfo(_member(path))
            folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(folder)
        for path, content, mode in files:
            info = tarfile.TarInfo(_member(path))
            info.size, info.mode, info.mtime = len(content), mode, now
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _member(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not path.startswith("/") or not parts or ".." in parts or "." in parts:
        raise ValueError(f"not an absolute path without '.' or '..': {path!r}")
    return "/".join(parts)
