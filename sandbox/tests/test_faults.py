"""Throttling as AWS answers it, the per-action call counters, and the rest of SSM
(Parameter Store) through the same endpoint."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from .conftest import BIN, boto_client, invocations, wait_command


@pytest.fixture
def clean_faults(control):
    control.clear_faults()
    yield control
    control.clear_faults()


def test_throttled_calls_get_throttling_exception(sandbox_env, clean_faults):
    control = clean_faults
    no_retries = boto_client(sandbox_env, "ssm", attempts=1)
    control.throttle(1.0, actions=["DescribeInstanceInformation"])
    with pytest.raises(ClientError) as err:
        no_retries.describe_instance_information()
    error = err.value.response["Error"]
    assert (error["Code"], error["Message"]) == ("ThrottlingException", "Rate exceeded")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert no_retries.list_commands(MaxResults=1)["ResponseMetadata"]["HTTPStatusCode"] == 200  # other actions pass
    control.throttle(0)
    assert no_retries.describe_instance_information()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_clients_retry_through_throttling_and_calls_are_counted(aws, clean_faults):
    control = clean_faults
    control.reset_calls()
    # The next two calls are refused; the AWS CLI retries (as boto3 does) and gets through.
    control.throttle(1.0, limit=2)
    listed = aws("ssm", "describe-instance-information", "--max-items", "5")
    assert "InstanceInformationList" in listed
    counts = control.calls()
    assert counts["calls"] == {"DescribeInstanceInformation": 3}
    assert counts["throttled"] == {"DescribeInstanceInformation": 2}
    assert control.faults()["throttle"] is None  # the limit retired the rule
    assert control.reset_calls()["total"] == 3
    assert control.calls() == {"calls": {}, "throttled": {}, "total": 0}


def test_share_of_calls_throttled(sandbox_env, clean_faults):
    control = clean_faults
    no_retries = boto_client(sandbox_env, "ssm", attempts=1)
    control.throttle(0.5, seed=11)
    outcomes = []
    for _ in range(60):
        try:
            no_retries.list_commands(MaxResults=1)
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert set(outcomes) == {"ok", "ThrottlingException"}
    assert 15 <= outcomes.count("ThrottlingException") <= 45


def test_parameter_store_through_the_ssm_endpoint(aws, ssm):
    name = f"/sandbox-tests/{uuid.uuid4().hex[:8]}/lock"
    aws("ssm", "put-parameter", "--name", name, "--value", "owner=ci-1", "--type", "String")
    assert aws("ssm", "get-parameter", "--name", name)["Parameter"]["Value"] == "owner=ci-1"
    with pytest.raises(ClientError) as err:
        ssm.put_parameter(Name=name, Value="owner=ci-2", Type="String", Overwrite=False)
    assert err.value.response["Error"]["Code"] == "ParameterAlreadyExists"
    assert ssm.get_parameter_history(Name=name)["Parameters"][0]["Value"] == "owner=ci-1"


def test_faults_and_calls_from_the_command_line(sandbox_env, clean_faults):
    def cli(*args: str) -> dict:
        result = subprocess.run(
            [str(BIN / "mlops-sandbox"), *args],
            env=sandbox_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    rule = cli("faults", "throttle", "1", "--actions", "ListDocuments", "--limit", "1")["throttle"]
    assert rule == {"share": 1.0, "actions": ["ListDocuments"], "limit": 1, "account": None, "throttled": 0}
    cli("calls", "--reset")
    no_retries = boto_client(sandbox_env, "ssm", attempts=1)
    with pytest.raises(ClientError):
        no_retries.list_documents()
    no_retries.list_documents()  # forwarded to moto once the rule retired
    assert cli("calls") == {"calls": {"ListDocuments": 2}, "throttled": {"ListDocuments": 1}, "total": 2}
    assert cli("calls", "--account", sandbox_env["MLOPS_SANDBOX_ACCOUNT_ID"])["total"] == 2
    assert cli("calls", "--account", "111111111111") == {"calls": {}, "throttled": {}, "total": 0}
    assert cli("faults", "clear") == {"throttle": None, "delivery_delay": {}, "kill_on_start": {}, "released": 0}
    bad = subprocess.run(
        [str(BIN / "mlops-sandbox"), "faults", "throttle", "2"],
        env=sandbox_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "share must be between 0 and 1" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_throttling_and_counting_narrowed_to_one_account(sandbox_env, clean_faults):
    """A test in one account (the CI layer's, say) neither throttles nor counts the calls of
    a test running beside it in another: the account is the caller's, from its access key."""
    from mlops_sandbox.client import Sandbox

    default = sandbox_env["MLOPS_SANDBOX_ACCOUNT_ID"]
    dev = "111111111111"
    sts = boto_client(sandbox_env, "sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{dev}:role/faults-test", RoleSessionName="faults-test")[
        "Credentials"
    ]
    dev_ssm = boto_client(sandbox_env, "ssm", attempts=1, credentials=creds)
    default_ssm = boto_client(sandbox_env, "ssm", attempts=1)
    mine = Sandbox(sandbox_env["MLOPS_SANDBOX_CONTROL_URL"], account=dev)
    mine.reset_calls()
    mine.throttle(1.0, actions=["ListCommands"])
    with pytest.raises(ClientError, match="ThrottlingException"):
        dev_ssm.list_commands(MaxResults=1)
    theirs = Sandbox(sandbox_env["MLOPS_SANDBOX_CONTROL_URL"], account=default)
    before = theirs.calls()
    assert default_ssm.list_commands(MaxResults=1)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert mine.calls() == {"calls": {"ListCommands": 1}, "throttled": {"ListCommands": 1}, "total": 1}
    after = theirs.calls()
    assert after["calls"]["ListCommands"] == before["calls"].get("ListCommands", 0) + 1
    assert after["throttled"] == before["throttled"]  # the default account's call went through
    assert mine.faults()["throttle"]["account"] == dev


def test_clearing_a_delay_lets_go_the_deliveries_it_holds(control, ssm, clean_faults):
    """A delay is fixed when a command is sent; `faults clear` ends it for the invocations
    it holds at that moment too (an agent's and a simulated instance's), not only for the
    commands sent later."""
    name = f"held-{uuid.uuid4().hex[:6]}"
    with control.fleet("light", 1, name=name, env="test") as light:
        (sim,) = control.add_instances("simulated", 1, name=name, duration=0.5)
        ids = [light[0]["instance_id"], sim["instance_id"]]
        try:
            control.delay_delivery(600, ids)
            command_id = ssm.send_command(
                InstanceIds=ids, DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]}
            )["Command"]["CommandId"]
            held = invocations(ssm, command_id)
            assert {i: held[i]["Status"] for i in ids} == dict.fromkeys(ids, "Pending"), held
            sent = time.monotonic()
            answer = control.clear_faults()
            # (both, unless the scheduler had not yet handed them out: then no delay holds them)
            assert answer["delivery_delay"] == {}, answer
            assert 0 <= answer["released"] <= 2, answer
            done = wait_command(ssm, command_id, timeout=60)
            took = time.monotonic() - sent
            assert done["Status"] == "Success", done
            assert took < 30, f"the held deliveries went {took:.0f}s after the clear ({answer})"
        finally:
            control.remove_instances(ids=[sim["instance_id"]])
