"""A real client none of us wrote, the AWS CLI, drives Run Command on the default fleet.

Both documents go to the full instances by ``tag:Name``; what comes back (statuses,
output, CloudWatch streams) is what AWS gives. Instances prove they ran the command by
printing their own instance id, read from their instance metadata service.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from .conftest import boto_client, invocations, wait_command, wait_for

WHOAMI = [
    'T=$(curl -s -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://169.254.169.254/latest/api/token)',
    'echo "hello from $(curl -s -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/instance-id)"',
    "echo to-stderr >&2",
]

PLAYBOOK = """\
- name: Release on the instance
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Show the extra variables
      ansible.builtin.debug:
        msg: "release={{ release }} env={{ env }}"
    - name: The instance's own Docker engine answers
      ansible.builtin.command: docker info --format '{{ "{{" }}.ServerVersion{{ "}}" }}'
      changed_when: false
"""

CHECK_PLAYBOOK = """\
- name: Check mode on the instance
  hosts: localhost
  gather_facts: false
  roles:
    - marker
  post_tasks:
    - name: Look for the marker
      ansible.builtin.stat:
        path: /tmp/{{ marker_name }}
      register: marker
    - name: Check mode changed nothing
      ansible.builtin.assert:
        that: not marker.stat.exists
"""


def log_lines(aws, group: str, stream: str, wanted: str) -> list[str]:
    """The stream's messages once ``wanted`` is among them (CloudWatch is written as output arrives)."""

    def read():
        result = aws.run("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", stream)
        if result.returncode != 0:
            return None
        lines = [e["message"] for e in json.loads(result.stdout)["events"]]
        return lines if any(wanted in line for line in lines) else None

    return wait_for(read, 30, f"{wanted!r} in CloudWatch stream {stream}")


def send(aws, *args: str) -> str:
    return aws("ssm", "send-command", *args)["Command"]["CommandId"]


def test_run_shell_script_by_tag_name(aws, ssm, model_servers):
    command_id = send(
        aws,
        "--document-name",
        "AWS-RunShellScript",
        "--targets",
        "Key=tag:Name,Values=model-server",
        "--parameters",
        json.dumps({"commands": WHOAMI}),
        "--comment",
        "sandbox test",
        "--cloud-watch-output-config",
        "CloudWatchOutputEnabled=true",
    )
    wait_command(ssm, command_id)
    command = aws("ssm", "list-commands", "--command-id", command_id)["Commands"][0]
    assert (command["Status"], command["StatusDetails"]) == ("Success", "Success")
    assert command["TargetCount"] == command["CompletedCount"] == len(model_servers)
    assert (command["ErrorCount"], command["DeliveryTimedOutCount"]) == (0, 0)
    assert (command["MaxConcurrency"], command["MaxErrors"], command["Comment"]) == ("50", "0", "sandbox test")

    listed = aws("ssm", "list-command-invocations", "--command-id", command_id, "--details")["CommandInvocations"]
    assert sorted(inv["InstanceId"] for inv in listed) == model_servers
    for inv in listed:
        (plugin,) = inv["CommandPlugins"]
        assert (inv["Status"], plugin["Name"], plugin["Status"], plugin["ResponseCode"]) == (
            "Success",
            "aws:runShellScript",
            "Success",
            0,
        )
        assert f"hello from {inv['InstanceId']}" in plugin["Output"]
        assert "----------ERROR-------\nto-stderr" in plugin["Output"]

    iid = model_servers[0]
    got = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert got["PluginName"] == "aws:runShellScript"
    assert (got["Status"], got["StatusDetails"], got["ResponseCode"]) == ("Success", "Success", 0)
    assert got["StandardOutputContent"] == f"hello from {iid}\n"
    assert got["StandardErrorContent"] == "to-stderr\n"
    assert got["ExecutionElapsedTime"].startswith("PT")

    # No group named: AWS writes to /aws/ssm/<document>, stream named after the plugin.
    group = "/aws/ssm/AWS-RunShellScript"
    assert log_lines(aws, group, f"{command_id}/{iid}/aws-runShellScript/stdout", "hello from") == [f"hello from {iid}"]
    assert log_lines(aws, group, f"{command_id}/{iid}/aws-runShellScript/stderr", "to-stderr") == ["to-stderr"]


def test_apply_ansible_playbooks_from_an_s3_yml(aws, ssm, model_servers, s3_bucket, sandbox_env):
    boto_client(sandbox_env, "s3").put_object(Bucket=s3_bucket, Key="playbooks/site.yml", Body=PLAYBOOK.encode())
    group = "/mlops/sandbox-tests/deploy"
    region = sandbox_env["AWS_REGION"]
    command_id = send(
        aws,
        "--document-name",
        "AWS-ApplyAnsiblePlaybooks",
        "--targets",
        "Key=tag:Name,Values=model-server",
        "Key=tag:env,Values=local",
        "--parameters",
        json.dumps(
            {
                "SourceType": ["S3"],
                "SourceInfo": [
                    json.dumps({"path": f"https://{s3_bucket}.s3.{region}.amazonaws.com/playbooks/site.yml"})
                ],
                "InstallDependencies": ["False"],
                "PlaybookFile": ["site.yml"],
                "ExtraVariables": ["release=r-42 env=local"],
            }
        ),
        "--cloud-watch-output-config",
        f"CloudWatchOutputEnabled=true,CloudWatchLogGroupName={group}",
    )
    command = wait_command(ssm, command_id, timeout=180)
    assert (command["Status"], command["CompletedCount"]) == ("Success", len(model_servers))

    iid = model_servers[-1]
    run = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert (run["PluginName"], run["Status"], run["ResponseCode"]) == ("runShellScript", "Success", 0)
    assert '"msg": "release=r-42 env=local"' in run["StandardOutputContent"]
    assert "ok=2" in run["StandardOutputContent"]
    download = aws(
        "ssm",
        "get-command-invocation",
        "--command-id",
        command_id,
        "--instance-id",
        iid,
        "--plugin-name",
        "downloadContent",
    )
    assert (download["Status"], download["ResponseCode"]) == ("Success", 0)
    assert f"s3://{s3_bucket}/playbooks/site.yml" in download["StandardOutputContent"]

    listed = aws("ssm", "list-command-invocations", "--command-id", command_id, "--details")["CommandInvocations"]
    assert {tuple(p["Name"] for p in inv["CommandPlugins"]) for inv in listed} == {
        ("downloadContent", "runShellScript")
    }
    lines = log_lines(aws, group, f"{command_id}/{iid}/runShellScript/stdout", "PLAY RECAP")
    assert any("release=r-42 env=local" in line for line in lines)


def _bundle() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as bundle:
        bundle.writestr("deploy/check.yml", CHECK_PLAYBOOK)
        bundle.writestr(
            "deploy/roles/marker/tasks/main.yml",
            "- name: Write the marker\n  ansible.builtin.copy:\n"
            "    dest: /tmp/{{ marker_name }}\n    content: x\n    mode: '0644'\n",
        )
    return buf.getvalue()


def test_apply_ansible_playbooks_zip_bundle_in_check_mode(aws, ssm, model_servers, s3_bucket, sandbox_env):
    boto_client(sandbox_env, "s3").put_object(Bucket=s3_bucket, Key="bundles/r1.zip", Body=_bundle())
    iid = model_servers[0]
    command_id = send(
        aws,
        "--document-name",
        "AWS-ApplyAnsiblePlaybooks",
        "--instance-ids",
        iid,
        "--parameters",
        json.dumps(
            {
                "SourceType": ["S3"],
                "SourceInfo": [json.dumps({"path": f"https://s3.amazonaws.com/{s3_bucket}/bundles/r1.zip"})],
                "InstallDependencies": ["True"],
                "PlaybookFile": ["deploy/check.yml"],
                "ExtraVariables": ["marker_name=sandbox-check-marker"],
                "Check": ["True"],
                "Verbose": ["-vv"],
            }
        ),
    )
    wait_command(ssm, command_id, timeout=180)
    run = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert (run["Status"], run["ResponseCode"]) == ("Success", 0), run["StandardOutputContent"][-2000:]
    out = run["StandardOutputContent"]
    assert "extracting: deploy/check.yml" in out  # the bundle was unzipped where the playbook runs
    assert "changed: [localhost]" in out  # the copy would change, in check mode
    assert "All assertions passed" in out


def test_a_playbook_missing_from_the_bundle_fails_as_the_document_says(aws, ssm, model_servers, s3_bucket, sandbox_env):
    boto_client(sandbox_env, "s3").put_object(Bucket=s3_bucket, Key="playbooks/site.yml", Body=PLAYBOOK.encode())
    iid = model_servers[0]
    command_id = send(
        aws,
        "--document-name",
        "AWS-ApplyAnsiblePlaybooks",
        "--instance-ids",
        iid,
        "--parameters",
        json.dumps(
            {
                "SourceType": ["S3"],
                "SourceInfo": [json.dumps({"path": f"https://{s3_bucket}.s3.amazonaws.com/playbooks/site.yml"})],
                "PlaybookFile": ["other.yml"],
            }
        ),
    )
    command = wait_command(ssm, command_id)
    assert (command["Status"], command["StatusDetails"], command["ErrorCount"]) == ("Failed", "Failed", 1)
    run = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert (run["Status"], run["ResponseCode"]) == ("Failed", 2)
    assert "The specified Playbook file doesn't exist in the downloaded bundle" in run["StandardErrorContent"]


def _command_count(ssm) -> int:
    """Every command the service holds (all pages: one is at most 50)."""
    return sum(len(page["Commands"]) for page in ssm.get_paginator("list_commands").paginate())


@pytest.mark.parametrize("extra", ["url=http://example.com", "msg='a:b'", "a=b;c"])
def test_extra_variables_that_aws_refuses_are_refused(aws, ssm, model_servers, extra):
    before = _command_count(ssm)
    stderr = aws.fails(
        "ssm",
        "send-command",
        "--document-name",
        "AWS-ApplyAnsiblePlaybooks",
        "--targets",
        "Key=tag:Name,Values=model-server",
        "--parameters",
        json.dumps(
            {
                "SourceType": ["S3"],
                "SourceInfo": ['{"path": "https://b.s3.amazonaws.com/x.yml"}'],
                "ExtraVariables": [extra],
            }
        ),
    )
    assert "An error occurred (InvalidParameters) when calling the SendCommand operation" in stderr
    assert "ExtraVariables" in stderr
    assert _command_count(ssm) == before  # nothing was sent


def test_errors_carry_the_codes_boto3_raises(ssm, model_servers):
    from botocore.exceptions import ClientError

    def code(call, **kwargs) -> str:
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        return err.value.response["Error"]["Code"]

    shell = {"DocumentName": "AWS-RunShellScript", "Parameters": {"commands": ["true"]}}
    assert code(ssm.send_command, InstanceIds=["i-0123456789abcdef0"], **shell) == "InvalidInstanceId"
    assert code(ssm.send_command, InstanceIds=model_servers[:1], DocumentName="AWS-NoSuchDocument") == "InvalidDocument"
    assert (
        code(ssm.send_command, InstanceIds=model_servers[:1], DocumentName="AWS-RunShellScript") == "InvalidParameters"
    )
    many = [f"i-{n:017x}" for n in range(51)]
    assert code(ssm.send_command, InstanceIds=many, **shell) == "ValidationException"
    assert code(ssm.send_command, InstanceIds=model_servers[:1], MaxErrors="-1", **shell) == "ValidationException"
    missing = "00000000-0000-0000-0000-000000000000"
    assert code(ssm.get_command_invocation, CommandId=missing, InstanceId=model_servers[0]) == "InvocationDoesNotExist"
    assert code(ssm.cancel_command, CommandId=missing) == "InvalidCommandId"
    assert ssm.list_command_invocations(CommandId=missing)["CommandInvocations"] == []
    command_id = ssm.send_command(InstanceIds=model_servers[:1], **shell)["Command"]["CommandId"]
    wait_for(lambda: invocations(ssm, command_id)[model_servers[0]]["Status"] == "Success", 60, "true to run")
    assert (
        code(ssm.get_command_invocation, CommandId=command_id, InstanceId=model_servers[0], PluginName="nope")
        == "InvalidPluginName"
    )
    assert code(ssm.list_commands, NextToken="not-a-token") == "InvalidNextToken"


def test_output_is_cut_where_aws_cuts_it(aws, ssm, model_servers):
    iid = model_servers[0]
    command_id = ssm.send_command(
        InstanceIds=[iid],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["head -c 30000 /dev/zero | tr '\\0' o", "head -c 9000 /dev/zero | tr '\\0' e >&2"]},
        CloudWatchOutputConfig={"CloudWatchOutputEnabled": True, "CloudWatchLogGroupName": "/mlops/sandbox-tests/big"},
    )["Command"]["CommandId"]
    wait_command(ssm, command_id)
    got = aws("ssm", "get-command-invocation", "--command-id", command_id, "--instance-id", iid)
    assert got["StandardOutputContent"] == "o" * 24000
    assert got["StandardErrorContent"] == "e" * 8000
    plugin = invocations(ssm, command_id)[iid]["CommandPlugins"][0]
    assert len(plugin["Output"]) == 2500
    assert plugin["Output"].endswith("---Output truncated---")
    # CloudWatch has all of it.
    lines = log_lines(aws, "/mlops/sandbox-tests/big", f"{command_id}/{iid}/aws-runShellScript/stdout", "ooo")
    assert sum(len(line) for line in lines) == 30000
