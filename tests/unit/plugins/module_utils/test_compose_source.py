"""The compose file to deploy, local or from S3 (``_compose_source``), fed with output captured from
docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose)."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_source import (
    has_top_level_name,
    parse_s3_url,
    prepare_source,
)

# -------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("name: model-api\nservices: {}\n", True),
        ('"name": model-api\n', True),
        ("services:\n  api:\n    name: not-the-project\n", False),
        ("# name: commented\nservices: {}\n", False),
        ("", False),
    ],
)
def test_top_level_name(content, named):
    assert has_top_level_name(content) is named


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/key.yml", ("bucket", "key.yml")),
        ("s3://bucket/releases/dev/r1/compose.yml", ("bucket", "releases/dev/r1/compose.yml")),
    ],
)
def test_parse_s3_url(url, expected):
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "https://bucket/key", "bucket/key"])
def test_parse_s3_url_refuses_what_is_not_one(url):
    with pytest.raises(DeployError, match="is not an s3://bucket/key URL"):
        parse_s3_url(url)


def test_prepare_source_downloads_and_checks_the_sha256(tmp_path):
    body = b"services:\n  api:\n    image: x\n"
    objects = {("releases", "dev/compose.yml"): body}
    src = prepare_source(
        "s3://releases/dev/compose.yml",
        hashlib.sha256(body).hexdigest(),
        "api",
        str(tmp_path),
        lambda b, k: objects[(b, k)],
    )
    assert src == {
        "path": str(tmp_path / "compose.yml"),
        "sha256": hashlib.sha256(body).hexdigest(),
        "downloaded": True,
    }
    assert (tmp_path / "compose.yml").read_bytes() == body


def test_prepare_source_refuses_a_file_that_is_not_the_release(tmp_path):
    local = tmp_path / "compose.yml"
    local.write_text("name: x\nservices: {}\n")
    with pytest.raises(DeployError, match="not the one released") as err:
        prepare_source(str(local), "sha256:" + "0" * 64, None, str(tmp_path), None)
    assert hashlib.sha256(local.read_bytes()).hexdigest() in err.value.msg


def test_prepare_source_needs_a_project_for_a_nameless_s3_file(tmp_path):
    with pytest.raises(DeployError, match="has no top-level name: and project is not set"):
        prepare_source("s3://b/compose.yml", None, None, str(tmp_path), lambda b, k: b"services: {}\n")


def test_prepare_source_says_when_the_local_file_is_missing(tmp_path):
    with pytest.raises(DeployError, match="does not exist"):
        prepare_source(str(tmp_path / "nope.yml"), None, None, str(tmp_path), None)
