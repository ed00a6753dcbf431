"""ECR's image API answered from the registry: what `docker push` sent is what the real
AWS CLI's `aws ecr describe-images` / `list-images` / `batch-get-image` see, with the
push's digest, and ECR's errors for what is not there."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import uuid

import pytest

from .conftest import BIN
from .test_registry import CONFIG, docker, ecr_client, moto_login, needs_registry, tiny_image


def aws_cli(sandbox_env, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **sandbox_env}
    env.pop("AWS_PROFILE", None)
    return subprocess.run(
        [str(BIN / "aws"), "ecr", *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A repository in moto with one image pushed to the registry under two tags."""
    config_dir = tmp_path_factory.mktemp("docker")
    _host, user, password = moto_login(CONFIG.moto_url, CONFIG.region)
    name = f"mlops-sandbox-selftest/ecr-{uuid.uuid4().hex[:6]}"
    ecr_client(CONFIG.moto_url, CONFIG.region).create_repository(repositoryName=name)
    # moto's repositoryUri has no port; the registry is reached at registry_address (port unless 443).
    uri = f"{CONFIG.registry_address}/{name}"
    login = docker(["login", "--username", user, "--password-stdin", CONFIG.registry_address], config_dir, password)
    assert login.returncode == 0, login.stderr
    tiny_image(f"{uri}:1", config_dir)
    push = docker(["push", f"{uri}:1"], config_dir)
    assert push.returncode == 0, push.stderr
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", push.stdout).group(1)
    assert docker(["tag", f"{uri}:1", f"{uri}:latest"], config_dir).returncode == 0
    assert docker(["push", f"{uri}:latest"], config_dir).returncode == 0
    yield {"name": name, "uri": uri, "digest": digest}
    docker(["image", "rm", "--force", f"{uri}:1", f"{uri}:latest"], config_dir)


@needs_registry
def test_describe_images_gives_the_digest_of_the_push(sandbox_env, pushed):
    result = aws_cli(sandbox_env, "describe-images", "--repository-name", pushed["name"], "--image-ids", "imageTag=1")
    assert result.returncode == 0, result.stderr
    [detail] = json.loads(result.stdout)["imageDetails"]
    assert detail["imageDigest"] == pushed["digest"]
    assert sorted(detail["imageTags"]) == ["1", "latest"]
    assert detail["repositoryName"] == pushed["name"]
    assert detail["registryId"] == CONFIG.account_id
    assert detail["imageManifestMediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert detail["imageSizeInBytes"] > 0


@needs_registry
def test_list_and_batch_get_agree_with_the_registry(sandbox_env, pushed):
    listed = json.loads(aws_cli(sandbox_env, "list-images", "--repository-name", pushed["name"]).stdout)
    assert sorted((i["imageTag"], i["imageDigest"]) for i in listed["imageIds"]) == [
        ("1", pushed["digest"]),
        ("latest", pushed["digest"]),
    ]
    got = aws_cli(sandbox_env, "batch-get-image", "--repository-name", pushed["name"], "--image-ids", "imageTag=latest")
    answer = json.loads(got.stdout)
    assert answer["failures"] == []
    manifest = answer["images"][0]["imageManifest"]
    assert "sha256:" + hashlib.sha256(manifest.encode()).hexdigest() == pushed["digest"]


@needs_registry
def test_what_is_not_there_is_ecrs_error(sandbox_env, pushed):
    tag = aws_cli(sandbox_env, "describe-images", "--repository-name", pushed["name"], "--image-ids", "imageTag=nope")
    assert tag.returncode != 0
    assert "ImageNotFoundException" in tag.stderr
    assert f"within the repository with name '{pushed['name']}'" in tag.stderr
    repo = aws_cli(sandbox_env, "describe-images", "--repository-name", "mlops-sandbox-selftest/never-created")
    assert repo.returncode != 0
    assert "RepositoryNotFoundException" in repo.stderr
    missing = json.loads(
        aws_cli(
            sandbox_env, "batch-get-image", "--repository-name", pushed["name"], "--image-ids", "imageTag=nope"
        ).stdout
    )
    assert missing["images"] == []
    assert missing["failures"][0]["failureCode"] == "ImageNotFound"


@needs_registry
def test_an_empty_repository_has_no_images(sandbox_env):
    name = f"mlops-sandbox-selftest/empty-{uuid.uuid4().hex[:6]}"
    ecr_client(CONFIG.moto_url, CONFIG.region).create_repository(repositoryName=name)
    result = aws_cli(sandbox_env, "describe-images", "--repository-name", name)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imageDetails"] == []


@needs_registry
def test_authorization_names_the_registry_as_clients_reach_it(sandbox_env):
    """GetAuthorizationToken through the sandbox's ECR endpoint: its proxyEndpoint is the
    registry with its port when that is not 443, so logins and pulls by that name reach
    this sandbox's registry (and the instances trust its CA under that name)."""
    answer = aws_cli(sandbox_env, "get-authorization-token")
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)["authorizationData"][0]
    assert data["proxyEndpoint"] == f"https://{CONFIG.registry_address}"
    assert data["proxyEndpoint"] == f"https://{sandbox_env['MLOPS_SANDBOX_ECR_REGISTRY']}"


def test_authorization_for_another_account_keeps_its_registry(sandbox_env):
    """A registry id of another account is not this sandbox's registry: its proxyEndpoint
    stays the one moto names (no port of ours), so a login to it fails as unreachable
    instead of logging into the sandbox's own registry under the wrong name."""
    answer = aws_cli(sandbox_env, "get-authorization-token", "--registry-ids", "111111111111")
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)["authorizationData"]
    assert [d["proxyEndpoint"] for d in data] == [f"https://111111111111.dkr.ecr.{CONFIG.region}.amazonaws.com"]
