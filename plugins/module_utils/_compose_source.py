# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The compose file to deploy: a path from the release bundle, or an ``s3://`` object
downloaded first; its sha256 checked before anything else happens.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. The S3 call itself is the caller's (``s3_get``), so this
stays free of boto3.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError

# ---------------------------------------------------------------------- files


def parse_s3_url(url: str | None) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``."""
    match = re.match(r"^s3://([^/]+)/(.+)$", url or "")
    if not match:
        raise DeployError("%r is not an s3://bucket/key URL" % (url,))
    return match.group(1), match.group(2)


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: str, expected: str | None, what: str) -> str | None:
    if not expected:
        return None
    wanted = expected.lower().removeprefix("sha256:")
    actual = sha256_file(path)
    if actual != wanted:
        raise DeployError(
            "%s has sha256 %s, not the expected %s; the file is not the one released (nothing was deployed)"
            % (what, actual, wanted)
        )
    return actual


_TOP_LEVEL_NAME = re.compile(r"""^["']?name["']?\s*:\s*\S""", re.M)


def has_top_level_name(text: str | None) -> bool:
    """Whether a compose file sets its project ``name:`` (a key at column 0)."""
    return bool(_TOP_LEVEL_NAME.search(text or ""))


def prepare_source(
    src: str,
    expected_sha256: str | None,
    project: str | None,
    directory: str,
    s3_get: Callable[[str, str], bytes] | None,
) -> dict:
    """The local compose file to deploy, downloading ``s3://`` sources into ``directory``.

    ``s3_get(bucket, key) -> bytes``. Returns ``{"path", "sha256", "downloaded"}``. The
    sha256, when given, is checked before anything else happens.
    """
    downloaded = src.startswith("s3://")
    if downloaded:
        bucket, key = parse_s3_url(src)
        data = s3_get(bucket, key)
        path = os.path.join(directory, os.path.basename(key) or "compose.yaml")
        os.makedirs(directory, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        if not project and not has_top_level_name(data.decode("utf-8", "replace")):
            raise DeployError(
                "%s has no top-level name: and project is not set; set project so that every release "
                "of it is the same compose project" % src
            )
    else:
        path = src
        if not os.path.isfile(path):
            raise DeployError("compose file %s does not exist (src)" % path)
    actual = check_sha256(path, expected_sha256, src)
    return {"path": path, "sha256": actual or sha256_file(path), "downloaded": downloaded}
