"""Image references resolved to digests: parsing, DescribeImages answers, messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _ecr_images as ei

HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "repository", "tag", "digest"),
    [
        (f"{HOST}/titanic-api:1.4.2", "titanic-api", "1.4.2", None),
        (f"{HOST}/team/titanic-api", "team/titanic-api", "latest", None),
        (f"{HOST}/titanic-api@{DIGEST}", "titanic-api", None, DIGEST),
        (f"{HOST}/titanic-api:1@{DIGEST}", "titanic-api", "1", DIGEST),
        ("999999999999.dkr.ecr-fips.us-gov-west-1.amazonaws.com/a:b", "a", "b", None),
        ("111111111111.dkr.ecr.cn-north-1.amazonaws.com.cn/a:b", "a", "b", None),
        (f"{HOST}:5470/titanic-api:1", "titanic-api", "1", None),  # a stand-in on another port
    ],
)
def test_parse_reference(ref, repository, tag, digest):
    parsed = ei.parse_reference(ref)
    assert (parsed["repository"], parsed["tag"], parsed["digest"]) == (repository, tag, digest)
    assert parsed["account"] == ref[:12]


def test_reference_without_registry_takes_the_defaults():
    parsed = ei.parse_reference("titanic-api:2", "123456789012", "eu-west-1")
    assert parsed["host"] == HOST
    assert parsed["region"] == "eu-west-1"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "empty image reference"),
        ("titanic-api:2", "names no registry; write it as"),
        ("docker.io/library/python:3.11", "is not an ECR registry"),
        (f"{HOST}/Titanic:1", "not a valid repository name"),
        (f"{HOST}/titanic@sha256:xyz", "not a sha256 digest"),
        (f"{HOST}/titanic:-bad", "not a valid tag"),
    ],
)
def test_bad_references_say_what_to_fix(ref, message):
    with pytest.raises(ei.ImageError, match=message):
        ei.parse_reference(ref)


# A DescribeImages imageDetails entry as botocore returns it.
DETAIL = {
    "registryId": "123456789012",
    "repositoryName": "titanic-api",
    "imageDigest": DIGEST,
    "imageTags": ["latest", "titanic-logreg-1"],
    "imageSizeInBytes": 52_110_342,
    "imagePushedAt": datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json",
}


def test_resolve_all_pins_and_asks_each_image_once():
    calls = []

    def describe(region, registry_id, repository, image_id):
        calls.append((region, registry_id, repository, image_id))
        return DETAIL

    refs = [f"{HOST}/titanic-api:latest", f"{HOST}/titanic-api:latest"]
    images, missing = ei.resolve_all(refs, describe)
    assert missing == []
    assert calls == [("eu-west-1", "123456789012", "titanic-api", {"imageTag": "latest"})]
    assert images[0]["pinned"] == f"{HOST}/titanic-api@{DIGEST}"
    assert images[0]["tags"] == ["latest", "titanic-logreg-1"]
    assert images[0]["pushed_at"] == "2026-11-21T10:00:00+00:00"
    assert len(images) == 2


def test_resolve_all_reports_every_missing_image():
    def describe(region, registry_id, repository, image_id):
        if repository == "gone":
            raise LookupError("RepositoryNotFoundException")
        raise LookupError("ImageNotFoundException")

    images, missing = ei.resolve_all([f"{HOST}/gone:1", f"{HOST}/titanic-api:9"], describe)
    assert images == []
    assert missing[0].startswith(f"{HOST}/gone:1: there is no repository gone in account 123456789012")
    assert "create it and push the image first" in missing[0]
    assert "no image with tag 9 in repository titanic-api" in missing[1]


def test_a_pinned_reference_must_match_what_ecr_answers():
    other = dict(DETAIL, imageDigest="sha256:" + "cd" * 32)
    with pytest.raises(ei.ImageError, match="ECR answered"):
        ei.resolve_all([f"{HOST}/titanic-api@{DIGEST}"], lambda *a: other)
