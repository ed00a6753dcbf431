"""The failure report filters: what the release role's failing tasks print, from the
registered results recorded in real failed runs (tests/unit/fixtures/failure_report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.deploy.plugins.filter.failure_report import (
    FilterModule,
    lock_report,
    rollout_report,
)
from ansible_collections.mlops.deploy.plugins.filter.failure_report import (
    tests_report as report_of_tests,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "failure_report"
SUCCESS = FIXTURES / "success.json"


def recorded(kind: str) -> dict:
    return json.loads((FIXTURES / f"{kind}.json").read_text())


def test_nothing_to_tell_when_nothing_failed():
    run = recorded("success")
    assert rollout_report(run["rollout"], run["release"]) == []
    assert lock_report(run["lock"], run["release"]) == []
    assert report_of_tests(run["tests"], run["release"]) == []


def test_a_failed_rollout_with_its_rollback():
    run = recorded("unhealthy")
    lines = rollout_report(run["rollout"], run["release"], run["rollback"], run["back_to"])
    assert lines[0].startswith("Release r-e2b0d0c3a3a8 of titanic failed in local at batch 1/3 (the canary)")
    assert "Rolled back: i-4e03b71bdc5e0d7ea back on r-5b6d44e50f7b." in lines


def test_a_rollback_that_did_not_run_is_said():
    run = recorded("unhealthy")
    skipped = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
    lines = rollout_report(run["rollout"], run["release"], skipped, run["back_to"])
    assert "Not rolled back to r-5b6d44e50f7b: the rollback did not run (i-4e03b71bdc5e0d7ea)." in lines


def test_the_lock_and_the_tests():
    assert lock_report(recorded("lock_held")["lock"], {"id": "r-1", "env": "local"})[0] == (
        "Release r-1 was not deployed to local: another run holds its deploy lock."
    )
    assert report_of_tests(recorded("tests_404")["tests"], {"env": "local", "endpoints": ["titanic"]})[0] == (
        "The release of titanic is deployed in local, but its tests failed:"
    )


def test_tests_run_with_failed_when_false_are_still_read_as_failed():
    tests = recorded("tests_failed")["tests"]
    for item in tests["results"]:
        item["failed"] = False  # what failed_when: false leaves in the registered result
    assert report_of_tests(tests, {"env": "local"})[1].startswith("  titanic, functional test: 3 of 3 URLs failed")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rollout_report({}, "r-1"), "rollout_report: release must be a dict {id, env, endpoints}, not str"),
        (
            lambda: lock_report([], {}),
            "lock_report: expects the registered result of mlops.deploy.deploy_lock, not list",
        ),
    ],
)
def test_bad_input_says_what_is_expected(call, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("{", r"\{").replace("}", r"\}")):
        call()


def test_the_filters_are_registered_under_their_documented_names():
    assert FilterModule().filters() == {
        "rollout_report": rollout_report,
        "lock_report": lock_report,
        "tests_report": report_of_tests,
    }
