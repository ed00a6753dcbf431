"""The SSM service's rules as plain functions, fed tables of AWS-shaped values (no sandbox needed)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from mlops_sandbox.ssm import api, documents, fold, shapes
from mlops_sandbox.ssm.errors import SsmError
from mlops_sandbox.ssm.faults import Faults
from mlops_sandbox.ssm.simulated import Distribution, SimSpec, outcome

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mlops_sandbox" / "agent"))
import agent  # noqa: E402 - the in-instance agent is a plain script directory
import imds  # noqa: E402


@pytest.mark.parametrize(
    ("value", "targets", "limit"),
    [("50", 3, 50), ("1", 120, 1), ("10%", 120, 12), ("10%", 5, 1), ("50%", 3, 2), ("100%", 7, 7)],
)
def test_max_concurrency(value, targets, limit):
    assert fold.concurrency_limit(value, targets) == limit


@pytest.mark.parametrize(
    ("value", "targets", "allowed"),
    [("0", 10, 0), ("3", 10, 3), ("10%", 50, 5), ("10%", 5, 0), ("0%", 9, 0), ("100%", 4, 4)],
)
def test_max_errors(value, targets, allowed):
    assert fold.error_limit(value, targets) == allowed


@pytest.mark.parametrize(
    ("details", "limit", "kwargs", "expected"),
    [
        (["Pending", "Pending"], 0, {}, ("Pending", "Pending")),
        (["InProgress", "Pending"], 0, {}, ("InProgress", "InProgress")),
        (["Delayed"], 0, {}, ("InProgress", "Delayed")),
        (["Success", "Delayed"], 0, {}, ("InProgress", "InProgress")),
        (["Success", "Success"], 0, {}, ("Success", "Success")),
        (["Success", "Failed"], 0, {}, ("Failed", "Failed")),
        (["Success", "Failed"], 1, {}, ("Success", "Incomplete")),
        (["Failed", "Terminated", "Terminated"], 0, {}, ("Failed", "Failed")),
        (["ExecutionTimedOut"], 0, {}, ("TimedOut", "ExecutionTimedOut")),
        (["ExecutionTimedOut", "ExecutionTimedOut", "Failed"], 0, {}, ("TimedOut", "ExecutionTimedOut")),
        (["DeliveryTimedOut"], 0, {}, ("TimedOut", "DeliveryTimedOut")),
        (["Success", "DeliveryTimedOut"], 1, {}, ("Success", "Incomplete")),
        (["Success", "Undeliverable"], 0, {}, ("Success", "Success")),
        (["InProgress", "Cancelled"], 0, {"cancel_requested": True}, ("Cancelling", "Cancelling")),
        (["Cancelled", "Success"], 0, {"cancel_requested": True}, ("Cancelled", "Cancelled")),
        ([], 0, {"no_targets": True}, ("Success", "NoInstancesInTag")),
    ],
)
def test_command_status(details, limit, kwargs, expected):
    assert fold.command_status(details, limit, **kwargs) == expected


def test_counts_follow_aws_definitions():
    details = ["Success", "Failed", "ExecutionTimedOut", "DeliveryTimedOut", "Undeliverable", "Terminated", "Pending"]
    assert fold.command_counts(details) == {"CompletedCount": 6, "ErrorCount": 2, "DeliveryTimedOutCount": 1}
    assert [fold.INVOCATION_STATUS[d] for d in details] == [
        "Success",
        "Failed",
        "TimedOut",
        "TimedOut",
        "Failed",
        "Cancelled",
        "Pending",
    ]


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        (["Success", "Success"], "Success"),
        (["Failed", "Success"], "Failed"),
        (["Success", "ExecutionTimedOut"], "ExecutionTimedOut"),
        (["Success", "Cancelled"], "Cancelled"),
    ],
)
def test_invocation_from_plugins(plugins, expected):
    assert fold.invocation_details(plugins) == expected


ANSIBLE = documents.get("AWS-ApplyAnsiblePlaybooks", None)
S3_SOURCE = {"SourceType": ["S3"], "SourceInfo": ['{"path": "https://b.s3.eu-west-1.amazonaws.com/site.yml"}']}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("SSM=True", True),
        ("env=prod release=2024-06-01_1", True),
        ("msg='hello world'", True),
        ("url=http://example.com", False),  # ':' is refused, quoted or not
        ("msg='a:b'", False),
        ("a=b;c", False),
        ("a=b|c", False),
        ("a=b&c", False),
        ("a=(b)", False),
        ("a=b c", False),  # a space inside a value
        ("=b", False),
    ],
)
def test_extra_variables_pattern(value, ok):
    given = {**S3_SOURCE, "ExtraVariables": [value]}
    if ok:
        assert ANSIBLE.resolve(given)["ExtraVariables"] == value
    else:
        with pytest.raises(SsmError) as err:
            ANSIBLE.resolve(given)
        assert err.value.code == "InvalidParameters"
        assert "ExtraVariables" in err.value.message


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("site.yml", True),
        ("deploy/site.yaml", True),
        ("a-b_c.d.yml", True),
        ("site.json", False),
        ("my site.yml", False),
    ],
)
def test_playbook_file_pattern(value, ok):
    given = {**S3_SOURCE, "PlaybookFile": [value]}
    if ok:
        assert ANSIBLE.resolve(given)["PlaybookFile"] == value
    else:
        with pytest.raises(SsmError, match="PlaybookFile"):
            ANSIBLE.resolve(given)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, 'Parameter "SourceType" is required'),
        ({**S3_SOURCE, "Colour": ["red"]}, "not defined in document"),
        ({**S3_SOURCE, "Check": ["yes"]}, "not in allowed values"),
        ({**S3_SOURCE, "TimeoutSeconds": ["0"]}, "TimeoutSeconds"),
        ({**S3_SOURCE, "Verbose": ["-v", "-vv"]}, "exactly one value"),
        ({"SourceType": ["S3"], "SourceInfo": ["not json"]}, "JSON object"),
    ],
)
def test_document_parameters_refused(given, message):
    with pytest.raises(SsmError, match=message) as err:
        ANSIBLE.resolve(given)
    assert err.value.code == "InvalidParameters"


def test_ansible_steps_and_streams():
    steps = ANSIBLE.plan(ANSIBLE.resolve({**S3_SOURCE, "Check": ["True"], "ExtraVariables": ["env=prod"]}))
    assert [(s.name, s.action, s.stream) for s in steps] == [
        ("downloadContent", "aws:downloadContent", "downloadContent"),
        ("runShellScript", "aws:runShellScript", "runShellScript"),
    ]
    script = "\n".join(steps[1].inputs["runCommand"])
    assert '-i "localhost," --check -c local' in script
    assert '-e "env=prod"' in script
    assert steps[1].timeout == 3600
    shell = documents.get("AWS-RunShellScript", "$DEFAULT")
    (step,) = shell.plan(shell.resolve({"commands": ["true"], "executionTimeout": ["5"]}))
    assert (step.name, step.stream, step.timeout) == ("aws:runShellScript", "aws-runShellScript", 5)


def test_unknown_document_and_version():
    with pytest.raises(SsmError) as err:
        documents.get("AWS-RunAnsiblePlaybookz", None)
    assert err.value.code == "InvalidDocument"
    with pytest.raises(SsmError) as err:
        documents.get("AWS-RunShellScript", "7")
    assert err.value.code == "InvalidDocumentVersion"


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        ({"DocumentName": "AWS-RunShellScript", "InstanceIds": [f"i-{n:017x}" for n in range(51)]}, "instanceIds"),
        ({"DocumentName": "AWS-RunShellScript", "MaxConcurrency": "0"}, "maxConcurrency"),
        ({"DocumentName": "AWS-RunShellScript", "MaxErrors": "101%"}, "maxErrors"),
        ({"DocumentName": "AWS-RunShellScript", "TimeoutSeconds": 10}, "timeoutSeconds"),
        ({"DocumentName": "AWS-RunShellScript", "Comment": "x" * 101}, "comment"),
        ({"InstanceIds": ["i-0123456789abcdef0"]}, "documentName"),
    ],
)
def test_model_constraints(request_, fragment):
    with pytest.raises(SsmError) as err:
        shapes.validate("SendCommand", request_)
    assert err.value.code == "ValidationException"
    assert err.value.message.startswith("1 validation error detected: ")
    assert f"at '{fragment}'" in err.value.message


def test_model_accepts_a_valid_request_and_refuses_it_without_a_required_member():
    request = {
        "DocumentName": "AWS-RunShellScript",
        "Targets": [{"Key": "tag:Name", "Values": ["model-server"]}],
        "MaxConcurrency": "10%",
        "MaxErrors": "0",
        "TimeoutSeconds": 30,
        "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": True},
    }
    assert shapes.validate("SendCommand", request) is None  # no ValidationException
    del request["DocumentName"]
    with pytest.raises(SsmError) as err:
        shapes.validate("SendCommand", request)
    assert err.value.code == "ValidationException"
    assert err.value.message == (
        "1 validation error detected: Value null at 'documentName' failed to satisfy constraint: "
        "Member must not be null"
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.5, "PT0.5S"), (12.25, "PT12.25S"), (3600.271, "PT1H0.271S"), (3723, "PT1H2M3S")]
)
def test_elapsed_time_format(seconds, text):
    assert api.elapsed(seconds) == text


def test_dates_and_truncation():
    assert api.iso(1683497613.797) == "2023-05-07T22:13:33.797Z"
    plugin = type("P", (), {"stdout": "o" * 3000, "stderr": "e"})()
    out = api.plugin_output(plugin)
    assert len(out) == api.PLUGIN_OUTPUT_LIMIT
    assert out.endswith("---Output truncated---")


def test_page_tokens_are_checked():
    items = list(range(120))
    first, token = api.page(items, {"MaxResults": 50}, "x")
    assert first == list(range(50))
    second, token = api.page(items, {"MaxResults": 50, "NextToken": token}, "x")
    third, token = api.page(items, {"MaxResults": 50, "NextToken": token}, "x")
    assert second[0] == 50
    assert third == list(range(100, 120))
    assert token is None
    with pytest.raises(SsmError) as err:
        api.page(items, {"NextToken": "garbage"}, "x")
    assert err.value.code == "InvalidNextToken"


@pytest.mark.parametrize(
    ("url", "bucket", "key"),
    [
        ("https://bkt.s3.eu-west-1.amazonaws.com/releases/local/r1.zip", "bkt", "releases/local/r1.zip"),
        ("https://bkt.s3.amazonaws.com/site.yml", "bkt", "site.yml"),
        ("https://my.dotted.bucket.s3.amazonaws.com/a/b.yml", "my.dotted.bucket", "a/b.yml"),
        ("https://s3.amazonaws.com/bkt/playbooks/", "bkt", "playbooks/"),
        ("https://s3.eu-west-1.amazonaws.com/bkt/x%20y.yml", "bkt", "x y.yml"),
        ("https://bkt.s3-eu-west-1.amazonaws.com/k.yml", "bkt", "k.yml"),
        ("s3://bkt/k.yml", "bkt", "k.yml"),
    ],
)
def test_s3_urls(url, bucket, key):
    assert agent.parse_s3_url(url) == (bucket, key)


@pytest.mark.parametrize(
    "url", ["https://example.com/site.yml", "ftp://bkt.s3.amazonaws.com/a", "https://s3.amazonaws.com/"]
)
def test_not_s3_urls(url):
    with pytest.raises(ValueError, match="S3 URL"):
        agent.parse_s3_url(url)


def test_metadata_needs_a_token_and_serves_identity():
    meta = imds.Metadata(
        {
            "MLOPS_INSTANCE_ID": "i-0123456789abcdef0",
            "MLOPS_REGION": "eu-west-1",
            "MLOPS_AZ": "eu-west-1b",
            "MLOPS_ACCOUNT_ID": "123456789012",
            "MLOPS_ROLE": "r",
            "MLOPS_PRIVATE_IP": "10.0.0.7",
        }
    )
    assert not meta.token_ok(None)
    assert not meta.token_ok("forged")
    assert meta.token_ok(meta.new_token(60))
    assert meta.lookup("/latest/meta-data/placement/region") == ("text/plain", "eu-west-1")
    assert meta.lookup("/latest/meta-data/iam/security-credentials/")[1] == "r"
    assert '"Code": "Success"' in meta.lookup("/latest/meta-data/iam/security-credentials/r")[1]
    assert '"accountId": "123456789012"' in meta.lookup("/latest/dynamic/instance-identity/document")[1]
    assert "placement/" in meta.lookup("/latest/meta-data/")[1].splitlines()
    assert meta.lookup("/latest/meta-data/nothing-here") is None


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "uniform", "low": 2, "high": 5},
        {"kind": "normal", "mean": 3, "stddev": 1},
        {"kind": "lognormal", "median": 3, "sigma": 0.5},
        {"kind": "exponential", "mean": 3},
        4,
    ],
)
def test_durations_are_drawn_from_the_distribution(spec):
    dist = Distribution.from_spec(spec)
    draws = [dist.draw(random.Random(n)) for n in range(300)]
    assert all(d >= 0 for d in draws)
    if isinstance(spec, dict) and spec["kind"] == "uniform":
        assert all(2 <= d <= 5 for d in draws)
    assert 1.5 < sum(draws) / len(draws) < 5.5


@pytest.mark.parametrize(
    "spec", [{"kind": "gamma"}, {"kind": "uniform", "low": 3}, {"kind": "uniform", "low": 5, "high": 1}, "x"]
)
def test_bad_durations_are_refused(spec):
    with pytest.raises(ValueError, match="duration"):
        Distribution.from_spec(spec)


def test_failure_share_is_honoured():
    spec = SimSpec.from_request({"duration": 1, "failure_share": 0.25, "seed": 7})
    rng = spec.rng("i-0123456789abcdef0")
    codes = [outcome(spec, rng, "AWS-RunShellScript", "i-x", "aws:runShellScript").code for _ in range(400)]
    assert 0.18 < codes.count(1) / len(codes) < 0.32
    with pytest.raises(ValueError, match="failure_share"):
        SimSpec.from_request({"failure_share": 2})


def test_throttle_switch_and_counters():
    faults = Faults()
    faults.set_throttle(1.0, ["ListCommands"], limit=2)
    results = [faults.call("ListCommands") for _ in range(4)] + [faults.call("SendCommand")]
    assert results == [True, True, False, False, False]
    counts = faults.counters()
    assert counts == {"calls": {"ListCommands": 4, "SendCommand": 1}, "throttled": {"ListCommands": 2}, "total": 5}
    assert faults.reset_counters()["total"] == 5
    assert faults.counters()["total"] == 0
    with pytest.raises(ValueError, match="share"):
        faults.set_throttle(1.5)


def test_throttle_and_counters_of_one_account_leave_the_others_alone():
    faults = Faults()
    faults.set_throttle(1.0, account="111111111111")
    assert [faults.call("ListCommands", "111111111111"), faults.call("ListCommands", "222222222222")] == [True, False]
    faults.call("SendCommand", "222222222222")
    assert faults.counters("111111111111") == {
        "calls": {"ListCommands": 1},
        "throttled": {"ListCommands": 1},
        "total": 1,
    }
    assert faults.counters()["calls"] == {"ListCommands": 2, "SendCommand": 1}
    # Resetting one account's counters keeps the other's.
    assert faults.reset_counters("111111111111")["total"] == 1
    assert faults.counters("111111111111")["total"] == 0
    assert faults.counters("222222222222") == {
        "calls": {"ListCommands": 1, "SendCommand": 1},
        "throttled": {},
        "total": 2,
    }
    assert faults.state()["throttle"]["account"] == "111111111111"
