"""Pure parts of compose_deploy, fed with output captured from docker compose 2.40 and the
Docker engine (tests/unit/fixtures/compose, written by capture.py there)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from ansible_collections.mlops.deploy.plugins.module_utils import _compose as c

FIXTURES = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "compose"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
REPO = f"{ECR}/mlops-test/model-api"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def events(name: str) -> list[dict]:
    return c.parse_events(text(f"{name}.stderr")) + c.parse_events(text(f"{name}.stdout"))


def snapshot(name: str) -> dict:
    return c.group_by_service([c.container_state(doc) for doc in json.loads(text(f"{name}.json"))])


def images() -> list[dict]:
    return json.loads(text("images_api.json"))


def image_id(tag: str) -> str:
    return next(img["Id"] for img in images() if f"{REPO}:{tag}" in img["RepoTags"])


def digest_ref(tag: str) -> str:
    return next(img["RepoDigests"][0] for img in images() if f"{REPO}:{tag}" in img["RepoTags"])


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("2.40.3\n", (2, 40, 3)),
        ("v2.29.1-desktop.1", (2, 29, 1)),
        ("Docker Compose version v2.24.0", (2, 24, 0)),
        ("", None),
        ("docker: 'compose' is not a docker command.", None),
    ],
)
def test_parse_compose_version(output, expected):
    assert c.parse_compose_version(output) == expected


def test_the_captured_version_passes_the_check():
    assert c.check_compose_version(text("version.txt")) >= c.MIN_COMPOSE_VERSION


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("2.20.2", "docker compose 2.20.2 is too old: compose_deploy needs 2.29.1 or later"),
        ("docker: 'compose' is not a docker command.", "docker compose v2 is not available"),
        ("", "install the compose v2 CLI plugin 2.29.1 or later"),
    ],
)
def test_compose_version_problems_say_what_to_install(output, message):
    with pytest.raises(c.DeployError) as err:
        c.check_compose_version(output)
    assert message in err.value.msg


# --------------------------------------------------------------------------- events


def test_parse_events_keeps_lines_that_are_not_json():
    parsed = c.parse_events('{"id":"api","text":"Pulling"}\nWARN[0000] something odd\n\n{broken json\n')
    assert parsed == [{"id": "api", "text": "Pulling"}, {"raw": "WARN[0000] something odd"}, {"raw": "{broken json"}]


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        (
            "up_first",
            {
                "created": ["mlops-test-capture-api-1", "mlops-test-capture-worker-1"],
                "recreated": [],
                "started": [],
                "removed": [],
                "running": [],
            },
        ),
        (
            "up_unchanged",
            {
                "created": [],
                "recreated": [],
                "started": [],
                "removed": [],
                "running": ["mlops-test-capture-api-1", "mlops-test-capture-worker-1"],
            },
        ),
        (
            "up_recreate",
            {
                "created": [],
                "recreated": ["mlops-test-capture-api-1"],
                "started": [],
                "removed": [],
                "running": ["mlops-test-capture-worker-1"],
            },
        ),
        (
            "up_remove_orphans",
            {
                "created": [],
                "recreated": [],
                "started": [],
                "removed": ["mlops-test-capture-worker-1"],
                "running": ["mlops-test-capture-api-1"],
            },
        ),
        (
            "up_port_conflict",
            {
                "created": ["mlops-test-capture-worker-1"],
                "recreated": ["mlops-test-capture-api-1"],
                "started": [],
                "removed": [],
                "running": [],
            },
        ),
    ],
)
def test_up_events_say_what_compose_did(capture, expected):
    summary = c.summarize_up_events(events(capture))
    assert {k: summary[k] for k in expected} == expected
    assert summary["dry_run"] is False


def test_up_events_of_a_first_run_include_the_network():
    summary = c.summarize_up_events(events("up_first"))
    assert summary["networks"] == {"mlops-test-capture_default": ["Creating", "Created"]}


def test_up_failure_events_carry_the_daemons_reason():
    errors = c.event_errors(events("up_port_conflict"))
    assert len(errors) == 1
    assert "address already in use" in errors[0]
    assert text("up_port_conflict.rc").strip() == "1"


@pytest.mark.parametrize("capture", ["pull_first", "pull_uptodate", "pull_new_digest", "pull_broken"])
def test_successful_pulls_look_alike_so_digests_decide(capture):
    """compose says "Pulled" whether or not anything new came: the events alone cannot
    tell a change, which is why the deploy compares image IDs before and after."""
    assert c.pull_outcome(events(capture)) == {"pulled": ["api", "worker"], "errors": [], "message": ""}


def test_failed_pull_names_the_service_and_the_registrys_answer():
    outcome = c.pull_outcome(events("pull_missing"))
    assert outcome["pulled"] == ["worker"]
    assert [e["service"] for e in outcome["errors"]] == ["api"]
    assert "never-pushed not found: manifest unknown" in outcome["errors"][0]["message"]
    assert outcome["message"].startswith("Error response from daemon: manifest for")
    assert text("pull_missing.rc").strip() == "1"


def test_config_output_is_read_for_services_and_hashes():
    model = json.loads(text("config.stdout"))
    assert model["name"] == "mlops-test-capture"
    assert sorted(model["services"]) == ["api", "worker"]
    assert model["services"]["api"]["image"] == f"{REPO}:capture"
    hashes = {line.split()[0]: line.split()[1] for line in text("config_hash.stdout").splitlines()}
    assert sorted(hashes) == ["api", "worker"]
    # The hash compose stamps on the container is the one `config --hash` prints.
    assert snapshot("inspect_v1_healthy")["api"][0]["config_hash"] == hashes["api"]


# --------------------------------------------------------------------------- images


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
    assert c.split_image_ref(ref) == expected


def test_repo_digest_finds_the_entry_of_the_repository():
    v1 = next(img for img in images() if f"{REPO}:v1" in img["RepoTags"])
    assert c.repo_digest(v1["RepoDigests"], REPO) == v1["RepoDigests"][0]
    assert c.repo_digest(v1["RepoDigests"], f"{ECR}/other") is None
    assert c.repo_digest(["nginx@sha256:1"], "docker.io/library/nginx") == "nginx@sha256:1"


def test_image_summary_tracks_id_digest_and_refs():
    v2 = next(img for img in images() if f"{REPO}:v2" in img["RepoTags"])
    summary = c.image_summary(v2, f"{REPO}:release")
    assert summary["id"] == v2["Id"]
    assert summary["digest_ref"] == v2["RepoDigests"][0]
    assert summary["digest"] == v2["RepoDigests"][0].split("@")[1]
    assert c.image_summary(None, REPO) is None


# --------------------------------------------------------------------------- containers


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
    grouped = c.group_by_service([c.container_state(d) for d in [*docs, oneoff]])
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
    diff = c.diff_snapshots(old, new, ["api", "worker"])
    assert diff == {"recreated": [], "created": [], "removed": [], "restarted": [], **expected}


# --------------------------------------------------------------------------- planning


def _hashes():
    return {line.split()[0]: line.split()[1] for line in text("config_hash.stdout").splitlines()}


def _local(tag):
    img = next(i for i in images() if f"{REPO}:{tag}" in i["RepoTags"])
    return c.image_summary(img, f"{REPO}:{tag}")


def test_plan_up_keeps_what_matches():
    model = json.loads(text("config.stdout"))["services"]
    before = snapshot("inspect_v1_healthy")
    plan = c.plan_up(["api", "worker"], model, _hashes(), before, {"api": _local("v1"), "worker": _local("v1")}, {})
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
    hashes, local, remote = _hashes(), {"api": _local("v1")}, {}
    if change == "remote":
        remote = {"api": "sha256:new"}
    elif change == "hash":
        hashes["api"] = "0" * 64
    elif change == "image":
        local = {"api": _local("v2")}
    elif change == "stopped":
        before["api"][0]["state"] = "exited"
    elif change == "scale":
        model["api"]["scale"] = 2
    elif change == "none":
        before = {}
    plan = c.plan_up(["api"], model, hashes, before, local, remote)
    assert plan["api"]["action"] == action
    assert reason in plan["api"]["reason"]


def test_orphans_are_services_no_longer_in_the_file():
    model = json.loads(text("config.stdout"))["services"]
    before = snapshot("inspect_v1_healthy")
    assert c.orphans(before, model) == []
    assert c.orphans(before, {"api": model["api"]}) == ["worker"]


# --------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("capture", "verdict", "problem"),
    [
        ("inspect_v1_healthy", "ok", None),
        ("inspect_v2_starting", "wait", "mlops-test-capture-api-1: starting"),
        ("inspect_broken_unhealthy", "fail", "mlops-test-capture-api-1 (api) is unhealthy"),
    ],
)
def test_health_verdict_from_captured_containers(capture, verdict, problem):
    result, problems = c.health_verdict(snapshot(capture), ["api", "worker"], {"api": 1, "worker": 1})
    assert result == verdict
    if problem:
        assert any(problem in p for p in problems), problems
    else:
        assert problems == []


@pytest.mark.parametrize(
    ("state", "verdict", "problem"),
    [
        ({"state": "exited", "exit_code": 3}, "fail", "exited with code 3"),
        ({"state": "restarting", "restart_count": 4}, "fail", "keeps restarting (4 restarts)"),
        ({"state": "created"}, "wait", "created"),
        ({"state": "running", "health": None, "has_healthcheck": False}, "ok", None),
    ],
)
def test_health_verdict_of_other_states(state, verdict, problem):
    grouped = snapshot("inspect_v1_healthy")
    grouped["api"][0].update(state)
    result, problems = c.health_verdict(grouped, ["api"], {"api": 1})
    assert result == verdict
    assert (problem is None and problems == []) or any(problem in p for p in problems)


def test_missing_replicas_are_waited_for():
    result, problems = c.health_verdict(snapshot("inspect_v1_healthy"), ["api"], {"api": 2})
    assert (result, problems) == ("wait", ["api: 1 of 2 containers"])


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_healthy_polls_until_healthy():
    observations = iter([snapshot("inspect_v2_starting")] * 3 + [snapshot("inspect_v1_healthy")])
    clock = FakeClock()
    verdict, problems, waited = c.wait_until_healthy(
        lambda: next(observations), ["api", "worker"], {"api": 1, "worker": 1}, 300, clock, clock.sleep
    )
    assert (verdict, problems) == ("ok", [])
    assert len(clock.sleeps) == 3
    assert clock.sleeps == sorted(clock.sleeps)  # backing off
    assert waited == round(sum(clock.sleeps), 2)


def test_wait_until_healthy_gives_up_at_the_timeout():
    clock = FakeClock()
    verdict, problems, waited = c.wait_until_healthy(
        lambda: snapshot("inspect_v2_starting"), ["api"], {"api": 1}, 30, clock, clock.sleep
    )
    assert verdict == "timeout"
    assert problems == ["mlops-test-capture-api-1: starting"]
    assert 30 <= waited <= 32
    assert max(clock.sleeps) <= 2.0


def test_wait_until_healthy_fails_at_once_on_unhealthy():
    clock = FakeClock()
    verdict, _problems, waited = c.wait_until_healthy(
        lambda: snapshot("inspect_broken_unhealthy"), ["api"], {"api": 1}, 300, clock, clock.sleep
    )
    assert (verdict, waited, clock.sleeps) == ("fail", 0, [])


# --------------------------------------------------------------------------- rollback & prune


def _image_of(image_id_):
    img = next((i for i in images() if i["Id"] == image_id_), None)
    if img is None:
        return None
    return {"id": img["Id"], "digest_ref": None, "repo_digests": img["RepoDigests"]}


def test_rollback_pins_the_previous_image_by_digest():
    before, after = snapshot("inspect_v2_starting"), snapshot("inspect_broken_unhealthy")
    plan = c.plan_rollback(before, after, ["api", "worker"], _image_of)
    assert plan["pins"] == {"api": digest_ref("v2")}
    assert plan["remove"] == []
    assert plan["restore"] == [{"service": "api", "from": image_id("capture"), "to": digest_ref("v2")}]


def test_rollback_removes_services_that_did_not_exist_before():
    before = {"worker": snapshot("inspect_v1_healthy")["worker"]}
    plan = c.plan_rollback(before, snapshot("inspect_v1_healthy"), ["api", "worker"], _image_of)
    assert plan["pins"] == {}
    assert plan["remove"] == ["api"]


def test_rollback_falls_back_to_the_image_id_without_a_digest():
    before, after = snapshot("inspect_v2_starting"), snapshot("inspect_broken_unhealthy")
    plan = c.plan_rollback(before, after, ["api"], lambda _id: None)
    assert plan["pins"] == {"api": image_id("v2")}


def test_rollback_override_is_a_compose_file_pinning_images():
    override = json.loads(c.rollback_override({"api": digest_ref("v2")}))
    assert override == {"services": {"api": {"image": digest_ref("v2")}}}


def test_prune_keeps_the_newest_and_what_runs():
    plan = c.plan_prune(images(), [REPO], in_use={image_id("v2")}, keep=1)
    removed = {item["image"] for item in plan}
    # What runs counts first: keep=1 keeps v2 alone.
    assert removed == {image_id("v1"), image_id("broken")}
    broken = next(item for item in plan if item["image"] == image_id("broken"))
    assert broken["refs"] == [digest_ref("broken"), f"{REPO}:broken", f"{REPO}:capture"]
    assert broken["repository"] == REPO


def test_prune_counts_the_image_in_use_before_newer_ones():
    plan = c.plan_prune(images(), [REPO], in_use={image_id("v1")}, keep=1)
    assert {item["image"] for item in plan} == {image_id("v2"), image_id("broken")}
    plan = c.plan_prune(images(), [REPO], in_use={image_id("v1")}, keep=2)
    assert len(plan) == 1
    assert plan[0]["image"] != image_id("v1")


def test_prune_never_touches_images_in_use_or_other_repositories():
    in_use = {img["Id"] for img in images()}
    assert c.plan_prune(images(), [REPO], in_use=in_use, keep=1) == []
    assert c.plan_prune(images(), [f"{ECR}/someone-else"], in_use=set(), keep=1) == []
    assert len(c.plan_prune(images(), [REPO], in_use=set(), keep=3)) == 0


# --------------------------------------------------------------------------- sources


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
    assert c.has_top_level_name(content) is named


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/key.yml", ("bucket", "key.yml")),
        ("s3://bucket/releases/dev/r1/compose.yml", ("bucket", "releases/dev/r1/compose.yml")),
    ],
)
def test_parse_s3_url(url, expected):
    assert c.parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "https://bucket/key", "bucket/key"])
def test_parse_s3_url_refuses_what_is_not_one(url):
    with pytest.raises(c.DeployError, match="is not an s3://bucket/key URL"):
        c.parse_s3_url(url)


def test_prepare_source_downloads_and_checks_the_sha256(tmp_path):
    body = b"services:\n  api:\n    image: x\n"
    objects = {("releases", "dev/compose.yml"): body}
    src = c.prepare_source(
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
    with pytest.raises(c.DeployError, match="not the one released") as err:
        c.prepare_source(str(local), "sha256:" + "0" * 64, None, str(tmp_path), None)
    assert hashlib.sha256(local.read_bytes()).hexdigest() in err.value.msg


def test_prepare_source_needs_a_project_for_a_nameless_s3_file(tmp_path):
    with pytest.raises(c.DeployError, match="has no top-level name: and project is not set"):
        c.prepare_source("s3://b/compose.yml", None, None, str(tmp_path), lambda b, k: b"services: {}\n")


def test_prepare_source_says_when_the_local_file_is_missing(tmp_path):
    with pytest.raises(c.DeployError, match="does not exist"):
        c.prepare_source(str(tmp_path / "nope.yml"), None, None, str(tmp_path), None)


# --------------------------------------------------------------------------- what to pull


def _registry(answers):
    def registry_digest(ref):
        if answers.get(ref) is None:
            raise c.DeployError("cannot read %s from its registry: manifest unknown" % ref)
        return answers[ref]

    return registry_digest


def test_stale_images_are_those_whose_registry_digest_is_not_local():
    v1, v2 = _local("v1"), _local("v2")
    refs = {"api": f"{REPO}:release", "worker": f"{REPO}:v1", "new": f"{REPO}:v2"}
    answers = {refs["api"]: v2["digest"], refs["worker"]: v1["digest"], refs["new"]: v2["digest"]}
    stale = c.stale_images(refs, {"api": v1, "worker": v1, "new": None}, _registry(answers))
    assert stale == {"api": v2["digest"], "new": v2["digest"]}


def test_an_image_pinned_by_digest_and_present_is_not_asked_for():
    pinned = {"api": digest_ref("v2")}
    assert c.stale_images(pinned, {"api": _local("v2")}, _registry({})) == {}


def test_a_registry_that_cannot_answer_fails_check_mode_and_defers_to_the_pull_otherwise():
    refs = {"api": f"{REPO}:never-pushed"}
    with pytest.raises(c.DeployError, match="manifest unknown"):
        c.stale_images(refs, {"api": None}, _registry({}))
    assert c.stale_images(refs, {"api": None}, _registry({}), tolerate_errors=True) == {"api": None}


@pytest.mark.parametrize(
    ("environ", "present", "expected"),
    [
        ({}, {"/home/u/.docker/cli-plugins/docker-compose"}, ["/home/u/.docker/cli-plugins/docker-compose"]),
        (
            {"DOCKER_CONFIG": "/etc/cfg"},
            {"/home/u/.docker/cli-plugins/docker-compose", "/etc/cfg/cli-plugins/docker-compose"},
            ["/etc/cfg/cli-plugins/docker-compose"],
        ),
        (
            {"DOCKER_CONFIG": "/etc/cfg"},
            {"/home/u/.docker/cli-plugins/docker-compose", "/usr/libexec/docker/cli-plugins/docker-compose"},
            ["/home/u/.docker/cli-plugins/docker-compose"],
        ),
        (
            {"DOCKER_CONFIG": "/etc/cfg"},
            {"/usr/libexec/docker/cli-plugins/docker-compose"},
            ["/usr/libexec/docker/cli-plugins/docker-compose"],
        ),
        ({}, set(), ["docker", "compose"]),
    ],
)
def test_compose_command_finds_the_plugin_where_docker_does(environ, present, expected):
    assert c.compose_command(environ, home="/home/u", is_executable=present.__contains__) == expected


# --------------------------------------------------------------------------- an unchanged release


def _model() -> dict:
    return json.loads(text("config.stdout"))


def _network() -> dict:
    return json.loads(text("network_inspect.json"))[0]


def _unchanged() -> dict:
    """The arguments of up_reasons for the captured project as it ran after its first up."""
    net = _network()
    return {
        "services": ["api", "worker"],
        "model": _model(),
        "hashes": _hashes(),
        "before": snapshot("inspect_v1_healthy"),
        "images": {"api": _local("v1"), "worker": _local("v1")},
        "networks": {net["Name"]: {"id": net["Id"], "labels": net["Labels"]}},
        "orphan_services": [],
    }


def test_the_network_hash_is_the_one_compose_stamps_on_the_network():
    definition = _model()["networks"]["default"]
    # The captured labels hold characters Go's JSON encoder escapes (<, >, &).
    assert "<b> & c" in definition["labels"]["io.mlops-deploy.note"]
    assert c.go_json_sha256(definition) == _network()["Labels"][c.LABEL_CONFIG_HASH]


def test_go_json_escapes_html_characters_as_go_does():
    expected = hashlib.sha256(b'{"a":"\\u003cb\\u003e \\u0026 \\u2028","n":[1,null,true]}').hexdigest()
    assert c.go_json_sha256({"a": "<b> & \u2028", "n": [1, None, True]}) == expected


def test_the_captured_release_after_its_first_up_needs_no_up():
    assert c.up_reasons(**_unchanged()) == []


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
        args["images"]["api"] = _local("v2")
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
        del network["labels"][c.LABEL_CONFIG_HASH]
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
    reasons = c.up_reasons(**_change(_unchanged(), change))
    assert any(r.startswith(reason) for r in reasons), reasons


def test_an_external_network_is_not_compared_with_the_file():
    args = _unchanged()
    args["model"]["networks"]["default"]["external"] = True  # compose neither creates nor recreates it
    assert c.up_reasons(**args) == []
    args["networks"] = {}
    missing = "network mlops-test-capture_default does not exist"
    assert c.up_reasons(**args) == [f"api: {missing}", f"worker: {missing}"]


def test_what_a_service_joins_and_mounts():
    model = _model()
    assert c.service_networks(model, "api") == {"mlops-test-capture_default": model["networks"]["default"]}
    assert c.service_volumes(model, "api") == []
    assert c.service_volumes(model, "worker") == ["mlops-test-capture_scratch"]
    host = {"services": {"probe": {"network_mode": "host"}}}
    assert c.service_networks(host, "probe") == {}


def test_up_of_some_services_also_converges_what_they_depend_on():
    services = {
        "api": {"depends_on": {"db": {"condition": "service_healthy"}}},
        "db": {"depends_on": {"init": {"condition": "service_completed_successfully"}}},
        "init": {},
        "docs": {},
    }
    assert c.with_dependencies(["api"], services) == ["api", "db", "init"]
    assert c.with_dependencies(["docs"], services) == ["docs"]
    assert c.with_dependencies([], services) == []


# --------------------------------------------------------------------------- the compose CLI


def _fake_start(outputs, log):
    """``start`` for ComposeCli that answers with captured output and records the order."""

    def start(argv, env):
        key = "hash" if "--hash" in argv else "config" if "config" in argv else "version"
        log.append(("start", key))

        def wait():
            log.append(("wait", key))
            return outputs[key]

        return wait

    return start


def _captured_inspection():
    return {
        "version": (0, text("version.txt"), ""),
        "config": (0, text("config.stdout"), ""),
        "hash": (0, text("config_hash.stdout"), ""),
    }


def test_the_three_read_only_calls_run_side_by_side():
    log = []
    cli = c.ComposeCli(None, ["/r/compose.yml"], start=_fake_start(_captured_inspection(), log))
    cli.start_inspection()
    assert log == [("start", "version"), ("start", "config"), ("start", "hash")]
    version, model, (hashes, result) = cli.inspect()
    assert [step for step, _key in log] == ["start"] * 3 + ["wait"] * 3
    assert version == (2, 40, 3)
    assert model == _model()
    assert hashes == _hashes() == c.parse_hashes(text("config_hash.stdout"))
    assert result["cmd"][-3:] == ["config", "--hash", "*"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": (0, "2.20.0\n", "")}, "docker compose 2.20.0 is too old"),
        ({"version": (127, "", "cannot run docker: [Errno 2] No such file")}, "docker compose v2 is not available"),
        ({"config": (15, "", "services.api must be a mapping")}, "docker compose cannot read /r/compose.yml"),
        ({"config": (0, "not json", "")}, "docker compose config did not print JSON"),
    ],
)
def test_inspection_problems_say_what_to_fix(change, message):
    cli = c.ComposeCli(None, ["/r/compose.yml"], start=_fake_start({**_captured_inspection(), **change}, []))
    with pytest.raises(c.DeployError, match=message):
        cli.inspect()


def test_hashes_compose_cannot_give_are_none_with_the_failed_call():
    outputs = {**_captured_inspection(), "hash": (1, "", "no such service")}
    _version, _model_, (hashes, result) = c.ComposeCli(None, ["/r/c.yml"], start=_fake_start(outputs, [])).inspect()
    assert hashes is None
    assert result["rc"] == 1
    assert result["stderr"] == "no such service"


def test_without_start_the_calls_run_one_after_the_other():
    outputs, calls = _captured_inspection(), []

    def run(argv, env):
        calls.append(argv)
        return outputs["hash" if "--hash" in argv else "config" if "config" in argv else "version"]

    version, model, (hashes, _result) = c.ComposeCli(run, ["/r/c.yml"], project="p").inspect()
    assert [argv[-3:] for argv in calls] == [
        ["compose", "version", "--short"],
        ["config", "--format", "json"],
        ["config", "--hash", "*"],
    ]
    assert all(argv[-7:-3] == ["-f", "/r/c.yml", "-p", "p"] for argv in calls[1:])
    assert (version, model["name"], sorted(hashes)) == ((2, 40, 3), "mlops-test-capture", ["api", "worker"])


def test_start_command_runs_a_real_process_with_the_extra_environment():
    wait = c.start_command(["/bin/sh", "-c", 'echo "out $EXTRA"; echo err >&2; exit 3'], {"EXTRA": "yes"})
    assert wait() == (3, "out yes\n", "err\n")


def test_start_command_reports_a_missing_program_as_a_failed_call():
    rc, out, err = c.start_command(["/nonexistent/docker-compose", "version"], {})()
    assert (rc, out) == (127, "")
    assert err.startswith("cannot run /nonexistent/docker-compose:")


# --------------------------------------------------------------------------- module options


def test_the_aws_options_are_amazon_aws_own():
    from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec

    assert c.aws_options() == aws_argument_spec()
