"""What the compose CLI prints, read (``_compose_events``), fed with output captured from
docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose)."""

from __future__ import annotations

import json

import pytest
from compose_recorded import REPO, events, snapshot, text

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_events import (
    MIN_COMPOSE_VERSION,
    check_compose_version,
    event_errors,
    parse_compose_version,
    parse_events,
    pull_outcome,
    summarize_up_events,
)

# ------------------------------------------------------------------- versions


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
    assert parse_compose_version(output) == expected


def test_the_captured_version_passes_the_check():
    assert check_compose_version(text("version.txt")) >= MIN_COMPOSE_VERSION


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("2.20.2", "docker compose 2.20.2 is too old: compose_deploy needs 2.29.1 or later"),
        ("docker: 'compose' is not a docker command.", "docker compose v2 is not available"),
        ("", "install the compose v2 CLI plugin 2.29.1 or later"),
    ],
)
def test_compose_version_problems_say_what_to_install(output, message):
    with pytest.raises(DeployError) as err:
        check_compose_version(output)
    assert message in err.value.msg


# --------------------------------------------------------------------- events


def test_parse_events_keeps_lines_that_are_not_json():
    parsed = parse_events('{"id":"api","text":"Pulling"}\nWARN[0000] something odd\n\n{broken json\n')
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
    summary = summarize_up_events(events(capture))
    assert {k: summary[k] for k in expected} == expected
    assert summary["dry_run"] is False


def test_up_events_of_a_first_run_include_the_network():
    summary = summarize_up_events(events("up_first"))
    assert summary["networks"] == {"mlops-test-capture_default": ["Creating", "Created"]}


def test_up_failure_events_carry_the_daemons_reason():
    errors = event_errors(events("up_port_conflict"))
    assert len(errors) == 1
    assert "address already in use" in errors[0]
    assert text("up_port_conflict.rc").strip() == "1"


@pytest.mark.parametrize("capture", ["pull_first", "pull_uptodate", "pull_new_digest", "pull_broken"])
def test_successful_pulls_look_alike_so_digests_decide(capture):
    """compose says "Pulled" whether or not anything new came: the events alone cannot
    tell a change, which is why the deploy compares image IDs before and after."""
    assert pull_outcome(events(capture)) == {"pulled": ["api", "worker"], "errors": [], "message": ""}


def test_failed_pull_names_the_service_and_the_registrys_answer():
    outcome = pull_outcome(events("pull_missing"))
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
