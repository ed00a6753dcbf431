"""Image references, digests, what to pull and what to prune (``_compose_images``), fed with output captured from
docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose)."""

from __future__ import annotations

import pytest
from compose_recorded import ECR, REPO, digest_ref, image_id, images, local_image, registry

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_images import (
    image_summary,
    plan_prune,
    repo_digest,
    split_image_ref,
    stale_images,
)

# --------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (f"{REPO}:v1", (REPO, "v1", None)),
        (REPO, (REPO, "latest", None)),
        (f"{REPO}@sha256:abc", (REPO, None, "sha256:abc")),
        (f"{REPO}:v1@sha256:abc", (REPO, "v1", "sha256:abc")),
        ("registry.local:5000/team/api", ("registry.local:5000/team/api", "latest", None)),
        ("registry.local:5000/team/api:2", ("registry.local:5000/team/api", "2", None)),
        ("nginx", ("nginx", "latest", None)),
    ],
)
def test_split_image_ref(ref, expected):
    assert split_image_ref(ref) == expected


def test_repo_digest_finds_the_entry_of_the_repository():
    v1 = next(img for img in images() if f"{REPO}:v1" in img["RepoTags"])
    assert repo_digest(v1["RepoDigests"], REPO) == v1["RepoDigests"][0]
    assert repo_digest(v1["RepoDigests"], f"{ECR}/other") is None
    assert repo_digest(["nginx@sha256:1"], "docker.io/library/nginx") == "nginx@sha256:1"


def test_image_summary_tracks_id_digest_and_refs():
    v2 = next(img for img in images() if f"{REPO}:v2" in img["RepoTags"])
    summary = image_summary(v2, f"{REPO}:release")
    assert summary["id"] == v2["Id"]
    assert summary["digest_ref"] == v2["RepoDigests"][0]
    assert summary["digest"] == v2["RepoDigests"][0].split("@")[1]
    assert image_summary(None, REPO) is None


# ----------------------------------------------------------- rollback & prune


def test_prune_keeps_the_newest_and_what_runs():
    plan = plan_prune(images(), [REPO], in_use={image_id("v2")}, keep=1)
    removed = {item["image"] for item in plan}
    # What runs counts first: keep=1 keeps v2 alone.
    assert removed == {image_id("v1"), image_id("broken")}
    broken = next(item for item in plan if item["image"] == image_id("broken"))
    assert broken["refs"] == [digest_ref("broken"), f"{REPO}:broken", f"{REPO}:capture"]
    assert broken["repository"] == REPO


def test_prune_counts_the_image_in_use_before_newer_ones():
    plan = plan_prune(images(), [REPO], in_use={image_id("v1")}, keep=1)
    assert {item["image"] for item in plan} == {image_id("v2"), image_id("broken")}
    plan = plan_prune(images(), [REPO], in_use={image_id("v1")}, keep=2)
    assert len(plan) == 1
    assert plan[0]["image"] != image_id("v1")


def test_prune_never_touches_images_in_use_or_other_repositories():
    in_use = {img["Id"] for img in images()}
    assert plan_prune(images(), [REPO], in_use=in_use, keep=1) == []
    assert plan_prune(images(), [f"{ECR}/someone-else"], in_use=set(), keep=1) == []
    assert len(plan_prune(images(), [REPO], in_use=set(), keep=3)) == 0


# --------------------------------------------------------------- what to pull


def test_stale_images_are_those_whose_registry_digest_is_not_local():
    v1, v2 = local_image("v1"), local_image("v2")
    refs = {"api": f"{REPO}:release", "worker": f"{REPO}:v1", "new": f"{REPO}:v2"}
    answers = {refs["api"]: v2["digest"], refs["worker"]: v1["digest"], refs["new"]: v2["digest"]}
    stale = stale_images(refs, {"api": v1, "worker": v1, "new": None}, registry(answers))
    assert stale == {"api": v2["digest"], "new": v2["digest"]}


def test_an_image_pinned_by_digest_and_present_is_not_asked_for():
    pinned = {"api": digest_ref("v2")}
    assert stale_images(pinned, {"api": local_image("v2")}, registry({})) == {}


def test_a_registry_that_cannot_answer_fails_check_mode_and_defers_to_the_pull_otherwise():
    refs = {"api": f"{REPO}:never-pushed"}
    with pytest.raises(DeployError, match="manifest unknown"):
        stale_images(refs, {"api": None}, registry({}))
    assert stale_images(refs, {"api": None}, registry({}), tolerate_errors=True) == {"api": None}
