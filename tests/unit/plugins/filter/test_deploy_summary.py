"""The deploy summary filters: written on the instance from compose_deploy's results, read
back on the controller from ssm_run_playbook's output lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.deploy.plugins.filter.deploy_summary import (
    FilterModule,
    deploy_failures,
    deploy_summary,
    instance_deploy_summaries,
    parse_summary_line,
)

DIGEST = "sha256:" + "ab" * 32


def compose_result(name: str, changed: bool, recreated: list[str]) -> dict:
    """One item of a looped compose_deploy task's ``results``, with its loop item."""
    return {
        "changed": changed,
        "endpoint": {"name": name, "compose": "compose/%s.yml" % name, "port": 8080},
        "services": [
            {"name": "api", "image": "r/api@" + DIGEST, "digest": DIGEST, "health": "healthy"},
            {"name": "worker", "image": "r/worker:1", "digest": None, "health": "none"},
        ],
        "actions": {"recreated": [{"service": s} for s in recreated], "pulled": [], "pruned": []},
        "ansible_loop_var": "endpoint",
    }


# What ansible-playbook printed for `debug: msg="MLOPS_DEPLOY_SUMMARY {{ ... | to_json }}"`
# (ansible-core 2.19), line by line as CloudWatch Logs holds it.
PRINTED = [
    "TASK [Summary for the controller (one line of JSON)] ***************************",
    "ok: [localhost] => {",
    '    "msg": "MLOPS_DEPLOY_SUMMARY {\\"env\\": \\"local\\", \\"release\\": \\"r-1\\", \\"endpoints\\": '
    '{\\"titanic\\": {\\"changed\\": true, \\"images\\": {\\"api\\": \\"sha256:ab\\"}, \\"health\\": '
    '{\\"api\\": \\"healthy\\"}, \\"recreated\\": [\\"api\\"]}}}"',
    "}",
]
PRINTED_SUMMARY = {
    "env": "local",
    "release": "r-1",
    "endpoints": {
        "titanic": {"changed": True, "images": {"api": "sha256:ab"}, "health": {"api": "healthy"}, "recreated": ["api"]}
    },
}


def test_the_summary_of_a_deploy_names_each_endpoint():
    results = [compose_result("titanic", True, ["api"]), compose_result("iris", False, [])]
    assert deploy_summary(results, "prod", "r-0123456789ab") == {
        "env": "prod",
        "release": "r-0123456789ab",
        "endpoints": {
            "titanic": {
                "changed": True,
                "images": {"api": DIGEST, "worker": None},
                "health": {"api": "healthy", "worker": "none"},
                "recreated": ["api"],
            },
            "iris": {
                "changed": False,
                "images": {"api": DIGEST, "worker": None},
                "health": {"api": "healthy", "worker": "none"},
                "recreated": [],
            },
        },
        "failures": [],
    }


def test_a_summary_written_is_read_back_from_the_printed_line():
    summary = deploy_summary([compose_result("titanic", True, ["api"])], "local", "r-1")
    line = '    "msg": %s' % json.dumps("MLOPS_DEPLOY_SUMMARY " + json.dumps(summary))
    assert parse_summary_line(line) == summary


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"results": []}, "expects the loop's results (a list), not dict"),
        ([{"changed": False, "services": []}], "a result has no endpoint.name"),
    ],
)
def test_deploy_summary_says_what_it_expects(results, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        deploy_summary(results, "prod", "r-1")


def test_the_line_as_debug_prints_it_is_read():
    assert [parse_summary_line(line) for line in PRINTED] == [None, None, PRINTED_SUMMARY, None]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'MLOPS_DEPLOY_SUMMARY {"env": "dev", "release": "r", "endpoints": {}}',
            {"env": "dev", "release": "r", "endpoints": {}},
        ),
        ('    "msg": "MLOPS_DEPLOY_SUMMARY {\\"env\\": \\"dev\\"}",', {"env": "dev"}),
        ('    "msg": "MLOPS_DEPLOY_SUMMARY {\\"env\\": ', None),  # cut by SSM
        ('    "msg": "something else"', None),
        ("MLOPS_DEPLOY_SUMMARY [1, 2]", None),
        ("", None),
    ],
)
def test_lines_that_are_not_a_whole_summary_are_none(line, expected):
    assert parse_summary_line(line) == expected


def test_each_instance_gets_its_last_summary_or_none():
    later = dict(PRINTED_SUMMARY, release="r-2")
    instances = [
        {"instance_id": "i-0aaaaaaaaaaaaaaa1", "batch": 1, "changed": True, "output_lines": PRINTED},
        {
            "instance_id": "i-0aaaaaaaaaaaaaaa2",
            "batch": 2,
            "changed": False,
            "output_lines": [PRINTED[2], "MLOPS_DEPLOY_SUMMARY " + json.dumps(later)],
        },
        {"instance_id": "i-0aaaaaaaaaaaaaaa3", "batch": 2, "changed": None, "output_lines": []},
        {"instance_id": "i-0aaaaaaaaaaaaaaa4", "batch": 3, "changed": False},  # never sent
    ]
    assert instance_deploy_summaries(instances) == [
        {"instance": "i-0aaaaaaaaaaaaaaa1", "batch": 1, "changed": True, "summary": PRINTED_SUMMARY},
        {"instance": "i-0aaaaaaaaaaaaaaa2", "batch": 2, "changed": False, "summary": later},
        {"instance": "i-0aaaaaaaaaaaaaaa3", "batch": 2, "changed": None, "summary": None},
        {"instance": "i-0aaaaaaaaaaaaaaa4", "batch": 3, "changed": False, "summary": None},
    ]


def test_instance_summaries_say_what_they_expect():
    with pytest.raises(AnsibleFilterError, match="expects ssm_run_playbook's instances"):
        instance_deploy_summaries({"instances": []})


def test_the_filters_are_registered_under_their_documented_names():
    assert FilterModule().filters() == {
        "deploy_summary": deploy_summary,
        "deploy_failures": deploy_failures,
        "instance_deploy_summaries": instance_deploy_summaries,
    }


# ------------------------------------------------------------------ what failed


def recorded_item_failure() -> dict:
    """The failed item of the looped compose_deploy task as the canary of a real release
    printed it (the image whose model does not load: tests/unit/fixtures/failure_report)."""
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "failure_report" / "unhealthy.json"
    tail = json.loads(fixture.read_text())["rollout"]["instances"][0]["stdout_tail"]
    mark = "failed: [localhost] (item=titanic) => "
    return json.loads(next(line for line in tail if line.startswith(mark))[len(mark) :])


def test_a_failed_endpoint_is_in_the_failures_with_its_reason_and_logs_not_in_the_endpoints():
    item = recorded_item_failure()
    failed_result = {"failed": True, "msg": "One or more items failed", "results": [dict(item, failed=True)]}
    task = {"name": "Deploy each endpoint of this instance (health-gated, rolled back on failure)",
            "action": "mlops.deploy.compose_deploy"}  # fmt: skip
    failures = deploy_failures(failed_result, task)
    assert [(f["step"], f["endpoint"]) for f in failures] == [("deploy", "titanic")]
    assert failures[0]["msg"].startswith("deploy of titanic unhealthy: titanic-api-1 (api) is unhealthy")
    assert "--- last" not in failures[0]["msg"]  # the logs are apart, as lines
    assert failures[0]["logs"]["titanic-api-1"][0].endswith(
        '"error": "model /app/model/model.json did not load: \'features\'"}'
    )
    summary = deploy_summary([dict(item, failed=True)], "local", "r-1", failures)
    assert summary["endpoints"] == {}
    assert summary["failures"] == failures
    # Printed as the YAML callback does (a literal block, indented), read back whole.
    assert parse_summary_line("        MLOPS_DEPLOY_SUMMARY " + json.dumps(summary)) == summary


def test_a_step_before_the_endpoints_is_one_failure():
    failed = {"failed": True, "msg": "bundle refused: /b: 1 changed (sha256 differs from the manifest): compose/a.yml"}
    task = {"name": "Refuse a bundle that is not the one the controller built", "action": "mlops.deploy.release_verify"}
    assert deploy_failures(failed, task) == [
        {
            "step": "bundle check",
            "task": "Refuse a bundle that is not the one the controller built",
            "endpoint": None,
            "msg": failed["msg"],
            "logs": {},
        }
    ]
