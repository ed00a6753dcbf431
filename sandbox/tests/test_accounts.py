"""Accounts in the sandbox: an instance lives in one account, and a caller sees its own.

moto keeps resources per account and picks the account of a request from its credentials
(an STS session of a role is in the role's account). The sandbox's instances follow: one
added with ``account=dev`` is an EC2 instance of dev's account, its metadata names that
account, and the SSM service shows it, its commands and its CloudWatch output to callers
of that account only, as AWS does.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid

import pytest

from mlops_sandbox import calls, fleetspec

from .conftest import boto_client, wait_for
from .test_registry import CONFIG, docker, ecr_client, moto_login, needs_registry, tiny_image

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


def test_a_dev_instance_writes_its_output_as_its_role_session(sandbox_env, dev_instance):
    """As the agent does: the instance's CloudWatch output is written with its instance
    profile role's session, which is in dev's account, the group looked up once per command
    and made only when missing."""
    iid = dev_instance["instance_id"]
    creds = session(sandbox_env, DEV)
    ssm_dev = boto_client(sandbox_env, "ssm", credentials=creds)
    logs_dev = boto_client(sandbox_env, "logs", credentials=creds)
    group = f"/sandbox-tests/agent-{uuid.uuid4().hex[:6]}"
    start = time.time()
    for word in ("first", "second"):
        sent = ssm_dev.send_command(
            InstanceIds=[iid],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": [f"echo {word}"]},
            CloudWatchOutputConfig={"CloudWatchOutputEnabled": True, "CloudWatchLogGroupName": group},
        )["Command"]["CommandId"]
        stream = f"{sent}/{iid}/aws-runShellScript/stdout"

        def output(stream=stream):
            try:
                return logs_dev.get_log_events(logGroupName=group, logStreamName=stream)["events"] or None
            except logs_dev.exceptions.ResourceNotFoundException:
                return None

        events = wait_for(output, 60, f"the {word} command's output in dev's CloudWatch Logs")
        assert [e["message"] for e in events] == [word]
    principal = f"arn:aws:sts::{DEV}:assumed-role/{fleetspec.load().role}/{iid}"
    writes = [e for e in calls.read(CONFIG, since=start) if e["service"] == "logs" and e["principal"] == principal]
    operations = [e["operation"] for e in writes]
    assert operations.count("DescribeLogGroups") == 2, operations  # once per command
    assert operations.count("CreateLogGroup") == 1, operations  # the first command's, the group was missing
    assert operations.count("PutLogEvents") >= 2, operations
    assert {e["account"] for e in writes} == {DEV}


@needs_registry
def test_a_dev_session_pulls_from_the_shared_registry(sandbox_env, tmp_path):
    """The shared registry account (the default one) serves the other accounts' pulls: a
    dev role session asking for its registry id gets the registry as clients reach it
    (with the port unless 443) and a token of its own, and its pull is dev's in the log.
    Its own account's registry keeps moto's name (the sandbox serves no registry there)."""
    shared = CONFIG.account_id
    name = f"mlops-sandbox-selftest/shared-{uuid.uuid4().hex[:6]}"
    ecr_client(CONFIG.moto_url, CONFIG.region).create_repository(repositoryName=name)
    ref = f"{CONFIG.registry_address}/{name}:1"
    pusher, puller = tmp_path / "pusher", tmp_path / "puller"
    _host, user, password = moto_login(CONFIG.moto_url, CONFIG.region)
    login = docker(["login", "--username", user, "--password-stdin", CONFIG.registry_address], pusher, password)
    assert login.returncode == 0, login.stderr
    tiny_image(ref, pusher)
    try:
        assert docker(["push", ref], pusher).returncode == 0
        assert docker(["image", "rm", ref], pusher).returncode == 0

        creds = session(sandbox_env, DEV)
        ecr_dev = boto_client(sandbox_env, "ecr", credentials=creds)
        [data] = ecr_dev.get_authorization_token(registryIds=[shared])["authorizationData"]
        assert data["proxyEndpoint"] == f"https://{CONFIG.registry_address}"
        user, _sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        assert password == f"{shared}-auth-token.{creds['AccessKeyId']}"  # dev's own token
        [own] = ecr_dev.get_authorization_token()["authorizationData"]
        assert own["proxyEndpoint"] == f"https://{DEV}.dkr.ecr.{CONFIG.region}.amazonaws.com"

        start = time.time()
        login = docker(["login", "--username", user, "--password-stdin", CONFIG.registry_address], puller, password)
        assert login.returncode == 0, login.stderr
        pull = docker(["pull", ref], puller)
        assert pull.returncode == 0, pull.stderr
        mine = [e for e in calls.read(CONFIG, since=start) if e["source"] == "registry"]
        assert "BatchGetImage" in {e["operation"] for e in mine}
        assert {e["principal"] for e in mine} == {f"arn:aws:sts::{DEV}:assumed-role/accounts-test/accounts-test"}
    finally:
        docker(["image", "rm", "--force", ref], pusher)
        ecr_client(CONFIG.moto_url, CONFIG.region).delete_repository(repositoryName=name, force=True)


def test_an_unknown_account_is_refused(control):
    from mlops_sandbox.client import SandboxControlError

    with pytest.raises(SandboxControlError, match="not one of the sandbox's"):
        control.add_instances("light", 1, "acct-refused", "dev", account="999999999999")
    assert control.instances(name="acct-refused") == []
