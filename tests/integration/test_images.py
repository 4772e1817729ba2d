"""A base image's root filesystem goes to the engine as one tar stream (`images.tar_stream`)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from patchtwin.twins.images import tar_stream


async def test_a_folder_streams_whole_as_a_tar(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("twin\n")
    os.symlink("etc/hostname", tmp_path / "link")

    data = b"".join([chunk async for chunk in tar_stream(str(tmp_path))])

    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = set(archive.getnames())
        assert {"./etc/hostname", "./link"} <= names
        assert archive.getmember("./link").linkname == "etc/hostname"


async def test_a_reader_that_gives_up_leaves_no_tar_behind(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom(8 * 1024 * 1024))  # more than one chunk
    stream = tar_stream(str(tmp_path))
    first = await anext(stream)
    assert first
    await stream.aclose()  # as an import that failed half way does

    running = subprocess.run(["pgrep", "-f", f"tar -C {tmp_path} -c"], capture_output=True, text=True)
    assert running.stdout == "", f"tar still running: {running.stdout}"
