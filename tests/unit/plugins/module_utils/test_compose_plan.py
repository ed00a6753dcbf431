"""What up would do, why up runs, how to roll back (``_compose_plan``), fed with output captured from
docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose)."""

from __future__ import annotations

import copy
import json

import pytest
from compose_recorded import (
    compose_model,
    config_hashes,
    digest_ref,
    image_id,
    image_of,
    local_image,
    network_doc,
    snapshot,
    text,
)

from ansible_collections.mlops.deploy.plugins.module_utils._compose_plan import (
    plan_rollback,
    plan_up,
    rollback_override,
    up_reasons,
)
from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import LABEL_CONFIG_HASH

# ------------------------------------------------------------------- planning


def test_plan_up_keeps_what_matches():
    model = json.loads(text("config.stdout"))["services"]
    before = snapshot("inspect_v1_healthy")
    plan = plan_up(
        ["api", "worker"], model, config_hashes(), before, {"api": local_image("v1"), "worker": local_image("v1")}, {}
    )
    assert plan == {"api": {"action": "keep", "reason": ""}, "worker": {"action": "keep", "reason": ""}}


@pytest.mark.parametrize(
    ("change", "action", "reason"),
    [
        ("remote", "recreate", "new image in the registry (sha256:new)"),
        ("hash", "recreate", "configuration changed"),
        ("image", "recreate", "image changed"),
        ("stopped", "start", "not running"),
        ("scale", "scale", "1 containers, 2 wanted"),
        ("none", "create", "no container yet"),
    ],
)
def test_plan_up_finds_each_reason_to_act(change, action, reason):
    model = copy.deepcopy(json.loads(text("config.stdout"))["services"])
    before = snapshot("inspect_v1_healthy")
    hashes, local, remote = config_hashes(), {"api": local_image("v1")}, {}
    if change == "remote":
        remote = {"api": "sha256:new"}
    elif change == "hash":
        hashes["api"] = "0" * 64
    elif change == "image":
        local = {"api": local_image("v2")}
    elif change == "stopped":
        before["api"][0]["state"] = "exited"
    elif change == "scale":
        model["api"]["scale"] = 2
    elif change == "none":
        before = {}
    plan = plan_up(["api"], model, hashes, before, local, remote)
    assert plan["api"]["action"] == action
    assert reason in plan["api"]["reason"]


# ----------------------------------------------------------- rollback & prune


def test_rollback_pins_the_previous_image_by_digest():
    before, after = snapshot("inspect_v2_starting"), snapshot("inspect_broken_unhealthy")
    plan = plan_rollback(before, after, ["api", "worker"], image_of)
    assert plan["pins"] == {"api": digest_ref("v2")}
    assert plan["remove"] == []
    assert plan["restore"] == [{"service": "api", "from": image_id("capture"), "to": digest_ref("v2")}]


def test_rollback_removes_services_that_did_not_exist_before():
    before = {"worker": snapshot("inspect_v1_healthy")["worker"]}
    plan = plan_rollback(before, snapshot("inspect_v1_healthy"), ["api", "worker"], image_of)
    assert plan["pins"] == {}
    assert plan["remove"] == ["api"]


def test_rollback_falls_back_to_the_image_id_without_a_digest():
    before, after = snapshot("inspect_v2_starting"), snapshot("inspect_broken_unhealthy")
    plan = plan_rollback(before, after, ["api"], lambda _id: None)
    assert plan["pins"] == {"api": image_id("v2")}


def test_rollback_override_is_a_compose_file_pinning_images():
    override = json.loads(rollback_override({"api": digest_ref("v2")}))
    assert override == {"services": {"api": {"image": digest_ref("v2")}}}


# ------------------------------------------------------- an unchanged release


def _unchanged() -> dict:
    """The arguments of up_reasons for the captured project as it ran after its first up."""
    net = network_doc()
    return {
        "services": ["api", "worker"],
        "model": compose_model(),
        "hashes": config_hashes(),
        "before": snapshot("inspect_v1_healthy"),
        "images": {"api": local_image("v1"), "worker": local_image("v1")},
        "networks": {net["Name"]: {"id": net["Id"], "labels": net["Labels"]}},
        "orphan_services": [],
    }


def test_the_captured_release_after_its_first_up_needs_no_up():
    assert up_reasons(**_unchanged()) == []


def _change(args, change):
    api, worker = args["before"]["api"][0], args["before"]["worker"][0]
    network = next(iter(args["networks"].values()))
    if change == "orphan":
        args["orphan_services"] = ["old"]
    elif change == "no hashes":
        args["hashes"] = None
    elif change == "config":
        args["hashes"]["api"] = "0" * 64
    elif change == "image":
        args["images"]["api"] = local_image("v2")
    elif change == "image gone":
        args["images"]["api"] = None
    elif change == "image label":
        api["image_label"] = "sha256:" + "1" * 64
    elif change == "stopped":
        api["state"] = "exited"
    elif change == "scale":
        args["model"]["services"]["api"]["scale"] = 2
    elif change == "no container":
        del args["before"]["worker"]
    elif change == "network missing":
        args["networks"] = {}
    elif change == "network definition":
        args["model"]["networks"]["default"]["labels"]["io.mlops-deploy.note"] = "changed"
    elif change == "network unlabelled":
        del network["labels"][LABEL_CONFIG_HASH]
    elif change == "network recreated":
        network["id"] = "f" * 64
    elif change == "volume":
        worker["volumes"] = []
    elif change == "starting":
        api["health"] = "starting"
    elif change == "unhealthy":
        api["health"] = "unhealthy"
    return args


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("orphan", "orphan services to remove: old"),
        ("no hashes", "compose gave no configuration hashes"),
        ("config", "api: recreate (configuration changed)"),
        ("image", "api: recreate (image changed"),
        ("image gone", "api: its image is not on the engine"),
        ("image label", "api: compose recorded another image"),
        ("stopped", "api: start (not running)"),
        ("scale", "api: scale (1 containers, 2 wanted)"),
        ("no container", "worker: create (no container yet)"),
        ("network missing", "api: network mlops-test-capture_default does not exist"),
        ("network definition", "api: network mlops-test-capture_default is not the file's definition"),
        ("network unlabelled", "api: network mlops-test-capture_default is not the file's definition"),
        ("network recreated", "api: a container is not on network mlops-test-capture_default"),
        ("volume", "worker: a container does not mount volume mlops-test-capture_scratch"),
        ("starting", "not all healthy yet: mlops-test-capture-api-1: starting"),
        ("unhealthy", "not all healthy yet: mlops-test-capture-api-1 (api) is unhealthy"),
    ],
)
def test_each_difference_makes_up_run(change, reason):
    reasons = up_reasons(**_change(_unchanged(), change))
    assert any(r.startswith(reason) for r in reasons), reasons


def test_an_external_network_is_not_compared_with_the_file():
    args = _unchanged()
    args["model"]["networks"]["default"]["external"] = True  # compose neither creates nor recreates it
    assert up_reasons(**args) == []
    args["networks"] = {}
    missing = "network mlops-test-capture_default does not exist"
    assert up_reasons(**args) == [f"api: {missing}", f"worker: {missing}"]
