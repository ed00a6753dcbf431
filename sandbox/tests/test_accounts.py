"""Accounts in the sandbox: an instance lives in one account, and a caller sees its own.

moto keeps resources per account and picks the account of a request from its credentials
(an STS session of a role is in the role's account). The sandbox's instances follow: one
added with ``account=dev`` is an EC2 instance of dev's account, its metadata names that
account, and the SSM service shows it, its commands and its CloudWatch output to callers
of that account only, as AWS does.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from .conftest import boto_client, wait_for

DEV = "111111111111"


@pytest.fixture(scope="module")
def dev_instance(control):
    name = f"acct-{uuid.uuid4().hex[:6]}"
    with control.fleet("light", 1, name=name, env="dev", account="dev") as found:
        yield found[0]


def session(sandbox_env, account: str) -> dict:
    """Credentials of a role session in ``account`` (STS AssumeRole)."""
    sts = boto_client(sandbox_env, "sts")
    return sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/accounts-test", RoleSessionName="accounts-test")[
        "Credentials"
    ]


def test_an_instance_lives_in_its_account(sandbox_env, dev_instance):
    assert dev_instance["account"] == DEV
    creds = session(sandbox_env, DEV)
    ec2_dev = boto_client(sandbox_env, "ec2", credentials=creds)
    found = ec2_dev.describe_instances(InstanceIds=[dev_instance["instance_id"]])["Reservations"][0]["Instances"][0]
    assert found["PrivateIpAddress"] == dev_instance["private_ip"]
    ec2_default = boto_client(sandbox_env, "ec2")
    with pytest.raises(ec2_default.exceptions.ClientError, match="InvalidInstanceID"):
        ec2_default.describe_instances(InstanceIds=[dev_instance["instance_id"]])
    container = f"mlops-sb-{sandbox_env['MLOPS_SANDBOX_NAME']}-{dev_instance['instance_id']}"
    document = subprocess.run(
        ["docker", "exec", container, "python3", "-c",
         "import json, urllib.request as u;"
         "t = u.urlopen(u.Request('http://169.254.169.254/latest/api/token', method='PUT',"
         " headers={'X-aws-ec2-metadata-token-ttl-seconds': '60'})).read().decode();"
         "print(u.urlopen(u.Request('http://169.254.169.254/latest/dynamic/instance-identity/document',"
         " headers={'X-aws-ec2-metadata-token': t})).read().decode())"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert json.loads(document)["accountId"] == DEV


def test_ssm_answers_within_the_callers_account(sandbox_env, dev_instance):
    iid = dev_instance["instance_id"]
    ssm_dev = boto_client(sandbox_env, "ssm", credentials=session(sandbox_env, DEV))
    ssm_default = boto_client(sandbox_env, "ssm")
    mine = [i["InstanceId"] for i in ssm_dev.describe_instance_information()["InstanceInformationList"]]
    assert iid in mine
    others = [i["InstanceId"] for i in ssm_default.describe_instance_information()["InstanceInformationList"]]
    assert iid not in others
    assert not set(mine) & set(others)

    with pytest.raises(
        ssm_default.exceptions.InvalidInstanceId, match=f"account {sandbox_env['MLOPS_SANDBOX_ACCOUNT_ID']}"
    ):
        ssm_default.send_command(
            InstanceIds=[iid], DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]}
        )
    group = f"/sandbox-tests/accounts-{uuid.uuid4().hex[:6]}"
    # A tag target selects the caller's instances only, whatever else carries the tag.
    sent = ssm_dev.send_command(
        Targets=[{"Key": "tag:Name", "Values": [dev_instance["name"]]}],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["echo from-dev"]},
        CloudWatchOutputConfig={"CloudWatchOutputEnabled": True, "CloudWatchLogGroupName": group},
    )["Command"]["CommandId"]

    def finished():
        found = ssm_dev.list_command_invocations(CommandId=sent)["CommandInvocations"]
        return found if found and all(i["Status"] == "Success" for i in found) else None

    invocations = wait_for(finished, 60, "the dev command to succeed")
    assert [i["InstanceId"] for i in invocations] == [iid]
    assert sent not in [c["CommandId"] for c in ssm_default.list_commands()["Commands"]]
    with pytest.raises(ssm_default.exceptions.InvocationDoesNotExist):
        ssm_default.get_command_invocation(CommandId=sent, InstanceId=iid)

    logs_dev = boto_client(sandbox_env, "logs", credentials=session(sandbox_env, DEV))
    stream = f"{sent}/{iid}/aws-runShellScript/stdout"

    def dev_output():
        # CloudWatch output lands after the command's status (on AWS too): the group and
        # its stream appear when the instance's output is written.
        try:
            return logs_dev.get_log_events(logGroupName=group, logStreamName=stream)["events"] or None
        except logs_dev.exceptions.ResourceNotFoundException:
            return None

    events = wait_for(dev_output, 30, "the dev instance's output in dev's CloudWatch Logs")
    assert [e["message"] for e in events] == ["from-dev"]
    assert boto_client(sandbox_env, "logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []


def test_an_unknown_account_is_refused(control):
    from mlops_sandbox.client import SandboxControlError

    with pytest.raises(SandboxControlError, match="not one of the sandbox's"):
        control.add_instances("light", 1, "acct-refused", "dev", account="999999999999")
    assert control.instances(name="acct-refused") == []
