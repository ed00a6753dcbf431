"""The project as the engine shows it and the file describes it (``_compose_state``), fed with output captured from
docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose)."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from compose_recorded import REPO, compose_model, image_id, network_doc, snapshot, text

from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import (
    LABEL_CONFIG_HASH,
    container_state,
    diff_snapshots,
    go_json_sha256,
    group_by_service,
    orphans,
    service_networks,
    service_volumes,
    with_dependencies,
)

# ----------------------------------------------------------------- containers


def test_container_state_from_inspect():
    api = snapshot("inspect_v1_healthy")["api"][0]
    worker = snapshot("inspect_v1_healthy")["worker"][0]
    assert api["name"] == "mlops-test-capture-api-1"
    assert api["image_id"] == image_id("v1")
    assert api["image_ref"] == f"{REPO}:capture"
    assert api["health"] == "healthy"
    assert api["has_healthcheck"] is True
    assert worker["has_healthcheck"] is False  # healthcheck: disable: true is Test ["NONE"]
    assert worker["health"] is None
    assert api["number"] == 1
    assert api["oneoff"] is False


def test_one_off_containers_are_not_part_of_the_service():
    docs = json.loads(text("inspect_v1_healthy.json"))
    oneoff = copy.deepcopy(docs[0])
    oneoff["Id"] = "0" * 64
    oneoff["Config"]["Labels"]["com.docker.compose.oneoff"] = "True"
    grouped = group_by_service([container_state(d) for d in [*docs, oneoff]])
    assert [x["id"] for x in grouped["api"]] == [snapshot("inspect_v1_healthy")["api"][0]["id"]]


def _restarted(grouped, service):
    changed = copy.deepcopy(grouped)
    changed[service][0]["started_at"] = "2026-11-22T00:00:00.000000000Z"
    return changed


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("inspect_v1_healthy", "inspect_v1_healthy", {}),
        ("inspect_v1_healthy", "inspect_v2_starting", {"recreated": ["api"]}),
        ("inspect_v2_starting", "inspect_broken_unhealthy", {"recreated": ["api"]}),
        (None, "inspect_v1_healthy", {"created": ["api", "worker"]}),
        ("inspect_v1_healthy", None, {"removed": ["api", "worker"]}),
        ("inspect_v1_healthy", "restart:worker", {"restarted": ["worker"]}),
    ],
)
def test_diff_snapshots_reports_what_really_happened(before, after, expected):
    old = snapshot(before) if before else {}
    if after and after.startswith("restart:"):
        new = _restarted(old, after.split(":")[1])
    else:
        new = snapshot(after) if after else {}
    diff = diff_snapshots(old, new, ["api", "worker"])
    assert diff == {"recreated": [], "created": [], "removed": [], "restarted": [], **expected}


# ------------------------------------------------------------------- planning


def test_orphans_are_services_no_longer_in_the_file():
    model = json.loads(text("config.stdout"))["services"]
    before = snapshot("inspect_v1_healthy")
    assert orphans(before, model) == []
    assert orphans(before, {"api": model["api"]}) == ["worker"]


# ------------------------------------------------------- an unchanged release


def test_the_network_hash_is_the_one_compose_stamps_on_the_network():
    definition = compose_model()["networks"]["default"]
    # The captured labels hold characters Go's JSON encoder escapes (<, >, &).
    assert "<b> & c" in definition["labels"]["io.mlops-deploy.note"]
    assert go_json_sha256(definition) == network_doc()["Labels"][LABEL_CONFIG_HASH]


def test_go_json_escapes_html_characters_as_go_does():
    expected = hashlib.sha256(b'{"a":"\\u003cb\\u003e \\u0026 \\u2028","n":[1,null,true]}').hexdigest()
    assert go_json_sha256({"a": "<b> & \u2028", "n": [1, None, True]}) == expected


def test_what_a_service_joins_and_mounts():
    model = compose_model()
    assert service_networks(model, "api") == {"mlops-test-capture_default": model["networks"]["default"]}
    assert service_volumes(model, "api") == []
    assert service_volumes(model, "worker") == ["mlops-test-capture_scratch"]
    host = {"services": {"probe": {"network_mode": "host"}}}
    assert service_networks(host, "probe") == {}


def test_up_of_some_services_also_converges_what_they_depend_on():
    services = {
        "api": {"depends_on": {"db": {"condition": "service_healthy"}}},
        "db": {"depends_on": {"init": {"condition": "service_completed_successfully"}}},
        "init": {},
        "docs": {},
    }
    assert with_dependencies(["api"], services) == ["api", "db", "init"]
    assert with_dependencies(["docs"], services) == ["docs"]
    assert with_dependencies([], services) == []
