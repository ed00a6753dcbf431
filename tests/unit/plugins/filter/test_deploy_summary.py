"""The deploy summary filters: written on the instance from compose_deploy's results, read
back on the controller from ssm_run_playbook's output lines."""

from __future__ import annotations

import json
import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.deploy.plugins.filter.deploy_summary import (
    FilterModule,
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
        "instance_deploy_summaries": instance_deploy_summaries,
    }
