"""compose_deploy on the host's Docker engine, images from the sandbox registry (the ECR
stand-in), through real ansible-playbook runs.

One project goes through the life of a release tag, in order: first deploy (v1), the tag
moved to v2, the tag moved to an image whose healthcheck fails (rolled back), a tag that
was never pushed (fails at pull), then a compose file on S3. The playbooks under
targets/compose_deploy assert what the module returns and what the engine shows; this
file prepares images, files and the registry, and checks a few things from outside.

Everything is named mlops-test-* or labelled io.mlops-deploy.test=compose-deploy and
removed at the end; nothing else on the shared engine is touched.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid

import pytest

from .conftest import Playbook, assert_play_ok
from .deploy_support import (
    REPOSITORY,
    RUN_ID,
    RegistryClient,
    cleanup_images,
    cleanup_projects,
    ecr_credentials,
    ensure_repository,
    free_port,
    make_docker_config,
    owned_project,
)

PREFIX = "mlops-test-cd-"
SIDECAR_REPOSITORY = f"mlops-test/sidecar-{RUN_ID}"

COMPOSE = """\
name: {project}
services:
  api:
    image: ${{MODEL_IMAGE:?MODEL_IMAGE is not set}}
    ports: ["127.0.0.1:{port}:8080"]
    labels:
      io.mlops-deploy.test: compose-deploy
  sidecar:
    image: {sidecar}
    healthcheck:
      disable: true
    labels:
      io.mlops-deploy.test: compose-deploy
"""

# On S3: the api alone, no top-level name (the project comes from the task).
COMPOSE_S3 = """\
services:
  api:
    image: ${{MODEL_IMAGE:?MODEL_IMAGE is not set}}
    ports: ["127.0.0.1:{port}:8080"]
    labels:
      io.mlops-deploy.test: compose-deploy
"""


@pytest.fixture(scope="module")
def release(aws, aws_env, tmp_path_factory):
    """Images built and in the registry, a project with its compose and env files."""
    cleanup_projects(PREFIX, leftovers_only=True)  # what an interrupted earlier run left
    ecr = aws("ecr")
    for name in (REPOSITORY, SIDECAR_REPOSITORY):
        ensure_repository(ecr, name)
    creds = ecr_credentials(ecr)
    pusher = RegistryClient(tmp_path_factory.mktemp("pusher-docker"), creds)
    pusher.login()
    run_id = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("compose")
    ids = {variant: pusher.build(variant) for variant in ("v1", "v2", "broken")}
    digests = {variant: pusher.push(pusher.uri(variant), variant) for variant in ("v1", "v2", "broken")}
    pusher.build("sidecar", SIDECAR_REPOSITORY)
    pusher.push(pusher.uri("sidecar", SIDECAR_REPOSITORY), "sidecar", SIDECAR_REPOSITORY)
    sidecar_digest = pusher.retag("sidecar", "1", SIDECAR_REPOSITORY)
    project = owned_project(PREFIX, run_id)
    port = free_port()
    release_tag = f"release-{run_id}"
    compose = work / "compose.yml"
    compose.write_text(COMPOSE.format(project=project, port=port, sidecar=pusher.uri("1", SIDECAR_REPOSITORY)))
    env_file = work / "release.env"
    env_file.write_text(f"MODEL_IMAGE={pusher.uri(release_tag)}\n")
    deployer_config = make_docker_config(work / "deployer-docker")
    runner = Playbook({**aws_env, "DOCKER_CONFIG": str(deployer_config)})
    info = {
        "pusher": pusher,
        "runner": runner,
        "tag": release_tag,
        "ids": ids,
        "digests": digests,
        "vars": {
            "project": project,
            "compose_file": str(compose),
            "env_file": str(env_file),
            "api_port": port,
            "docker_config": str(deployer_config),
            "repository": f"{creds['registry']}/{REPOSITORY}",
        },
        "sidecar_digest": sidecar_digest,
        "work": work,
    }
    yield info
    cleanup_projects(project)
    cleanup_images()


def _move_tag(release, variant):
    """Point the release tag at ``variant`` in the registry, as CI pushing a new build
    does, without touching the tags of this engine (the deploy has to pull)."""
    return release["pusher"].retag(variant, release["tag"])


def test_first_deploy_then_same_release_again(release):
    assert _move_tag(release, "v1") == release["digests"]["v1"]
    result = release["runner"].run(
        "compose_deploy/first_deploy.yml",
        {**release["vars"], "v1_digest": release["digests"]["v1"], "sidecar_digest": release["sidecar_digest"]},
    )
    assert_play_ok(result)


def test_new_image_behind_the_same_tag_recreates_only_that_service(release):
    assert _move_tag(release, "v2") == release["digests"]["v2"]
    result = release["runner"].run(
        "compose_deploy/new_image.yml",
        {
            **release["vars"],
            "v1_digest": release["digests"]["v1"],
            "v2_digest": release["digests"]["v2"],
            "v1_image_id": release["ids"]["v1"],
            "broken_image_id": release["ids"]["broken"],
        },
    )
    assert_play_ok(result)
    # keep_images=1 pruned the unused v1 image from the engine.
    gone = subprocess.run(["docker", "image", "inspect", release["ids"]["v1"]], capture_output=True, check=False)
    assert gone.returncode != 0


def test_unhealthy_release_is_rolled_back_and_v2_keeps_serving(release):
    _move_tag(release, "broken")
    result = release["runner"].run(
        "compose_deploy/rollback.yml",
        {**release["vars"], "v2_digest": release["digests"]["v2"], "v2_image_id": release["ids"]["v2"]},
    )
    assert_play_ok(result)


def test_image_that_does_not_exist_fails_at_pull(release):
    env_file = release["work"] / "missing.env"
    env_file.write_text(f"MODEL_IMAGE={release['pusher'].uri('never-pushed-' + release['tag'])}\n")
    result = release["runner"].run("compose_deploy/missing_image.yml", {**release["vars"], "env_file": str(env_file)})
    assert_play_ok(result)


def test_compose_file_from_s3_with_sha256(release, aws):
    s3 = aws("s3")
    bucket = f"mlops-test-releases-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    body = COMPOSE_S3.format(port=release["vars"]["api_port"]).encode()
    key = "releases/dev/r1/compose.yml"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    env_file = release["work"] / "v2.env"
    env_file.write_text(f"MODEL_IMAGE={release['pusher'].uri('v2')}\n")
    result = release["runner"].run(
        "compose_deploy/s3_source.yml",
        {
            **release["vars"],
            "env_file": str(env_file),
            "s3_src": f"s3://{bucket}/{key}",
            "s3_sha256": hashlib.sha256(body).hexdigest(),
            "v2_digest": release["digests"]["v2"],
        },
    )
    assert_play_ok(result)


def test_bad_inputs_fail_clearly(release, aws):
    s3 = aws("s3")
    bucket = f"mlops-test-bad-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key="nameless.yml", Body=COMPOSE_S3.format(port=1).encode())
    broken = release["work"] / "broken.yml"
    broken.write_text("services:\n  api: [this, is, not, a, service]\n")
    before = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={release['vars']['project']}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = release["runner"].run(
        "compose_deploy/bad_input.yml", {**release["vars"], "bucket": bucket, "broken_file": str(broken)}
    )
    assert_play_ok(result)
    after = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={release['vars']['project']}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert before == after
