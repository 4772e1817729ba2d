"""Asset images: the fingerprint covers exactly what goes into the image; the recipe pins it."""

from __future__ import annotations

import io
import tarfile

from patchtwin.twins.asset_images import build_context, dockerfile, fingerprint
from schemas.asset import Asset

BASE = "patchtwin/debian:12"
ASSET = {"id": "web-01", "platform": {"os": "debian", "version": "12"},
         "packages": {"hello": "2.10-3", "tree": "2.1.0-1"},
         "files": [{"path": "/etc/app/app.conf", "content": "x = 1\n", "mode": "0600"}],
         "environment": {"APP_ENV": "prod"}}


def test_fingerprint_ignores_what_is_not_in_the_image() -> None:
    one = Asset.model_validate(ASSET)
    other_host = Asset.model_validate({**ASSET, "id": "web-02", "services": ["nginx"], "ports": [{"port": 80}]})
    assert fingerprint(one, BASE) == fingerprint(other_host, BASE)


def test_fingerprint_changes_with_a_pin_a_file_or_the_base() -> None:
    one = Asset.model_validate(ASSET)
    repinned = Asset.model_validate({**ASSET, "packages": {"hello": "2.10-2", "tree": "2.1.0-1"}})
    edited = Asset.model_validate({**ASSET, "files": [{"path": "/etc/app/app.conf", "content": "x = 2\n"}]})
    prints = {fingerprint(one, BASE), fingerprint(repinned, BASE), fingerprint(edited, BASE),
              fingerprint(one, "patchtwin/debian:11")}
    assert len(prints) == 4


def test_recipe_installs_exact_versions_and_writes_files_with_their_modes() -> None:
    text = dockerfile(Asset.model_validate(ASSET), BASE)
    assert text.splitlines()[0] == f"FROM {BASE}"
    assert 'ENV APP_ENV="prod"' in text
    assert "apt-get install" in text and "hello=2.10-3 tree=2.1.0-1" in text
    assert 'COPY ["files/0", "/etc/app/app.conf"]' in text and 'RUN chmod 600 "/etc/app/app.conf"' in text
    with tarfile.open(fileobj=io.BytesIO(build_context(Asset.model_validate(ASSET), BASE))) as tar:
        assert sorted(tar.getnames()) == ["Dockerfile", "files/0"]
        member = tar.extractfile("files/0")
        assert member is not None and member.read() == b"x = 1\n"
